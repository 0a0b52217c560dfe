from aunce.cli import main

raise SystemExit(main())
