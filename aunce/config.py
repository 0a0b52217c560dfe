"""Configuration: load, validate against ``config/schema.yaml``, fill defaults, resolve settings.

The Snakefile, the CLI and the tests all go through :func:`load_config` / :func:`check_config`, so a
typo in a key or a wrong type is reported the same way everywhere: one line per problem, naming the
key path (``pretrain.lr``) and the offending value, before any job starts.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from aunce import AunceError
from aunce.hints import did_you_mean

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "config" / "schema.yaml"

#: Sources whose datasets are cross-validated over three subject partitions, and those with a
#: fixed split. ``list`` is cross-validated with as many folds as its list files hold.
CROSS_VALIDATED = {"bp4d", "disfa"}
FIXED_SPLIT = {"gft", "affwild2"}
TEST_ONLY = {"bp4d_plus"}
#: how far from 1 a method's ``positive_probs`` may sum (the loss's own tolerance, aunce.losses)
PROBABILITY_TOLERANCE = 1e-6
SHA256_PATTERN = "^[0-9a-fA-F]{64}$"
#: what the names of datasets, encoders, methods and tables may be (config/schema.yaml's
#: propertyNames): they become folder names and parts of the jobs' commands
NAME_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_.-]*$"
#: the description of the schema's list of encoder names (the encoders aunce.encoders registers)
ENCODER_NAMES = "the encoders of aunce.encoders"
#: a loss given by import path, ``package.module:function`` (config/schema.yaml's pattern)
_NAME = "[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"^{_NAME}(\.{_NAME})*:{_NAME}$")


#: PyYAML's safe loader, in C (libyaml, in PyYAML's wheels) where there is one: the same documents,
#: read about ten times faster (every Snakemake start reads the config and its schema); a file it
#: refuses is read again by the Python loader, whose messages say more
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str | Path) -> Any:
    """Read a YAML file. Whatever keeps it from loading is one :class:`AunceError` line naming the
    file (and line): a file that is missing, a folder, unreadable, binary or not UTF-8, a tab where
    YAML wants spaces, or a syntax error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise AunceError(f"config file '{path}' not found") from None
    except IsADirectoryError:
        raise AunceError(f"{path}: a folder, not a config file") from None
    except OSError as err:
        raise AunceError(f"{path}: cannot be read ({err.strerror or err})") from None
    text = _text(path, raw)
    try:
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError:
        pass
    try:  # the pure-Python loader again, for its message ("expected ',' or ']', but got ...")
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        lines = text.splitlines()
        if mark is not None and mark.line < len(lines) and "\t" in lines[mark.line]:
            raise AunceError(
                f"{path}:{where}: a tab character; YAML indents with spaces only (replace the tab "
                "with spaces)"
            ) from None
        raise AunceError(f"{path}:{where}: invalid YAML ({problem})") from None


def _text(path: Path, raw: bytes) -> str:
    """The text of a config file, or an error that says it is not text."""
    if b"\0" in raw:
        raise AunceError(f"{path}: a binary file (byte {raw.index(0)} is NUL), not a YAML config")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise AunceError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[err.start]:02x} at offset "
            f"{err.start}); a config is a YAML text file"
        ) from None


def check_config(config: dict, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Validate ``config`` in place against the JSON schema and fill its defaults.

    Raises :class:`AunceError` listing every problem as ``key.path: message``.
    """
    import jsonschema

    schema = load_yaml(schema_path)
    if not isinstance(config, dict):
        raise AunceError(f"config must be a mapping of keys to values, got {type(config).__name__}")
    validator = jsonschema.Draft202012Validator(schema)
    _read_numbers(config, validator)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        lines = [f"  {_key_path(e)}: {_message(e)}" for e in errors]
        raise AunceError("invalid config:\n" + "\n".join(lines))
    fill_defaults(config, schema)
    problems = _check_references(config) + _check_values(config)
    if problems:
        raise AunceError("invalid config:\n" + "\n".join(f"  {p}" for p in problems))
    return config


#: a number as YAML 1.2 writes it: ``1e-3`` (YAML 1.1, which PyYAML and Snakemake read, wants
#: ``1.0e-3`` and takes ``1e-3`` for text)
_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _read_numbers(config: dict, validator) -> None:
    """Read as numbers the strings that look like numbers where the schema wants a number
    (``lr: 1e-3``), in place; every other type error is left to the validation."""
    for _ in range(100):  # one pass per nesting level at most, in practice one
        changed = False
        for error in validator.iter_errors(config):
            wanted = error.validator_value if error.validator == "type" else None
            wanted = [wanted] if isinstance(wanted, str) else wanted or []
            if "number" in wanted and isinstance(error.instance, str):
                if _NUMBER.match(error.instance.strip()):
                    _set(config, list(error.absolute_path), float(error.instance))
                    changed = True
        if not changed:
            return


def _set(config: dict, path: list, value) -> None:
    target = config
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def load_config(*paths: str | Path, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Load one config file, or several merged in order as Snakemake merges ``--configfile A B``."""
    config: dict = {}
    for path in paths:
        loaded = load_yaml(path)
        if loaded is not None and not isinstance(loaded, dict):
            raise AunceError(
                f"{path}: a config is a mapping of keys to values (`key: value` lines), this file "
                f"holds a {type(loaded).__name__}"
            )
        merge_config(config, loaded or {})
    try:
        return check_config(config, schema_path)
    except AunceError as err:
        raise AunceError(f"{' + '.join(map(str, paths))}: {err}") from None


def retype_overrides(config: dict, overrides, schema_path: str | Path = SCHEMA_PATH) -> dict:
    """Read as YAML the strings of ``snakemake --config`` that the schema refuses as strings.

    Snakemake parses ``--config key=value`` itself: a top-level number or boolean gets its type, but
    inside a mapping or a list every value stays a string (``pretrain={"epochs": 3}`` gives
    ``epochs: '3'``). Each such string given in ``overrides`` (Snakemake's parsed ``--config``)
    whose place in the schema wants another type is replaced by its YAML reading when that reading
    fits (``3``, ``1.0e-3``, ``true``, ``null``); a string that is one stays a string. In place."""
    import jsonschema

    if not overrides or not isinstance(config, dict):
        return config
    validator = jsonschema.Draft202012Validator(load_yaml(schema_path))
    for _ in range(1000):  # one value per pass; a config has far fewer
        for error in validator.iter_errors(config):
            if not isinstance(error.instance, str) or not _given(overrides, error.absolute_path):
                continue
            try:
                value = yaml.safe_load(error.instance)
            except yaml.YAMLError:
                continue
            if isinstance(value, str) or not validator.evolve(schema=error.schema).is_valid(value):
                continue
            *parents, last = error.absolute_path
            node = config
            for key in parents:
                node = node[key]
            node[last] = value
            break
        else:
            return config
    return config


def _given(overrides, path) -> bool:
    """Whether ``path`` (keys and list indices) leads to a string value in ``overrides``."""
    node = overrides
    for key in path:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(node, str)


def merge_config(base: dict, overlay: dict) -> dict:
    """Recursively update ``base`` with ``overlay`` (nested mappings merge, other values replace)."""
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_config(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def fill_defaults(instance: dict, schema: dict) -> None:
    """Insert the schema's ``default`` for every missing key, recursively (objects only)."""
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        if isinstance(instance.get(key), dict) and sub.get("type") == "object":
            fill_defaults(instance[key], sub)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict) and extra.get("type") == "object":
        for key, value in instance.items():
            if key not in schema.get("properties", {}) and isinstance(value, dict):
                fill_defaults(value, extra)


def _key_path(error) -> str:
    path = ".".join(str(p) for p in error.absolute_path)
    if error.validator == "additionalProperties":
        # name the unexpected key itself, not its parent
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        return ".".join(filter(None, [path, ",".join(extra)])) or "<top level>"
    return path or "<top level>"


def _message(error) -> str:
    if error.schema.get("pattern") == NAME_PATTERN:
        return (
            f"'{error.instance}' is not a valid name: letters, digits, '_', '-' and '.' only, "
            "starting with a letter, digit or '_' (names become folder names and parts of the "
            "jobs' commands)"
        )
    if error.validator == "enum" and error.schema.get("description") == ENCODER_NAMES:
        return (
            f"'{error.instance}' is not an encoder of aunce (known: "
            f"{', '.join(error.validator_value)}; docs/encoders.md)"
        )
    if error.validator == "not":
        return f"not allowed here ({error.schema.get('description', 'see config/schema.yaml')})"
    if error.validator == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        hint = "".join(did_you_mean(key, known) for key in extra)
        return f"unknown key ({hint}allowed here: {', '.join(known)})"
    if error.validator == "enum":
        hint = did_you_mean(error.instance, error.validator_value).removesuffix("? ")
        return error.message + (f" ({hint}?)" if hint else "")
    if error.validator == "pattern":
        return _pattern_message(error)
    return error.message


def _pattern_message(error) -> str:
    """A pattern error in words: what the value should look like, and a likely correction."""
    value = error.instance
    if error.schema.get("pattern") == SHA256_PATTERN:
        return f"'{value}' is not a SHA-256 digest (64 hexadecimal digits)"
    if list(error.absolute_path)[-1:] != ["loss"]:
        return error.message
    module, colon, function = str(value).rpartition(":")
    if not colon:
        return (
            f"'{value}' is not aunce, wce, wfl or the import path of a function of yours "
            f"({did_you_mean(value, ('aunce', 'wce', 'wfl'))}package.module:function, with a "
            "colon before the function)"
        )
    dotted = module.removeprefix("./").removesuffix(".py").replace("\\", "/").replace("/", ".")
    hint = f"'{dotted}:{function}'"
    if module != dotted and _IMPORT_PATH.match(f"{dotted}:{function}"):
        return (
            f"'{value}' names a file; give the module with dots, {hint} (imported with the "
            "project folder on sys.path, docs/custom-method.md)"
        )
    return (
        f"'{value}' is not an import path package.module:function (letters, digits and "
        "underscores, modules separated by dots, docs/custom-method.md)"
    )


def _check_references(config: dict) -> list[str]:
    """Cross-key checks a JSON schema cannot express: tables name known datasets/methods/encoders."""
    problems = []
    for table, spec in config.get("tables", {}).items():
        for key, known in (
            ("dataset", "datasets"),
            ("datasets", "datasets"),
            ("test_dataset", "datasets"),
            ("pairs", "datasets"),
            ("encoder", "encoders"),
            ("encoders", "encoders"),
            ("methods", "methods"),
            ("base", "methods"),
            ("baseline", "methods"),
        ):
            names = _as_list(spec.get(key))
            if key == "pairs":
                names = [n for pair in names for n in pair]
            for name in names:
                if name not in config.get(known, {}):
                    defined = ", ".join(sorted(config.get(known, {}))) or "none"
                    hint = did_you_mean(name, config.get(known, {}))
                    problems.append(
                        f"tables.{table}.{key}: '{name}' is not defined under '{known}' "
                        f"({hint}defined: {defined})"
                    )
        if spec.get("kind") == "noise" and spec.get("dataset") in config.get("datasets", {}):
            if config["datasets"][spec["dataset"]]["source"] != "synthetic":
                problems.append(
                    f"tables.{table}.dataset: a noise table needs a synthetic dataset "
                    f"(only there are the true labels known), '{spec['dataset']}' is not"
                )
    used = {
        name
        for spec in config.get("tables", {}).values()
        for key in ("dataset", "datasets", "test_dataset")
        for name in _as_list(spec.get(key))
    }
    used |= {
        n for spec in config.get("tables", {}).values() for p in spec.get("pairs", []) for n in p
    }
    for name, ds in config.get("datasets", {}).items():
        if name in used and ds["source"] != "synthetic" and not ds.get("root"):
            problems.append(
                f"datasets.{name}.root: source '{ds['source']}' reads a real dataset and needs its "
                "folder (set root: /path/to/dataset, or source: synthetic, or drop the tables "
                "that use it)"
            )
    return problems


def _check_values(config: dict) -> list[str]:
    """Value checks a JSON schema cannot express: probabilities that sum to 1, and the seeds and
    folds of a table among those the config and its datasets have."""
    problems = []
    for name, method in config.get("methods", {}).items():
        probs = method.get("positive_probs")
        if probs is not None and abs(sum(probs) - 1.0) > PROBABILITY_TOLERANCE:
            problems.append(f"methods.{name}.positive_probs: {probs} sum to {sum(probs):g}, not 1")
    crops = [("pretrain.resized_crop", (config.get("pretrain") or {}).get("resized_crop"))]
    crops += [
        (f"methods.{name}.pretrain.resized_crop", (m.get("pretrain") or {}).get("resized_crop"))
        for name, m in config.get("methods", {}).items()
    ]
    for where, crop in crops:
        for key in ("scale", "ratio"):
            lo, hi = (crop or {}).get(key, (0, 0))
            if lo > hi:
                problems.append(
                    f"{where}.{key}: [{lo:g}, {hi:g}]: the smallest exceeds the largest"
                )
    for name, encoder in config.get("encoders", {}).items():
        if name != "megraph" and encoder.get("neighbors") is not None:
            problems.append(
                f"encoders.{name}.neighbors: {encoder['neighbors']}: only megraph has a graph of "
                "AU nodes (drop the key)"
            )
    for name in (config.get("warm_start") or {}).get("encoder_epochs") or {}:
        if name not in config.get("encoders", {}):
            problems.append(
                f"warm_start.encoder_epochs: '{name}' is not one of the config's encoders "
                f"({', '.join(config.get('encoders', {}))})"
            )
    linear = config.get("linear_eval", {})
    if linear.get("features", "embeddings") == "embeddings":
        for key, default in (("encoder_mode", "eval"), ("augment", "crop")):
            if linear.get(key, default) != default:
                problems.append(
                    f"linear_eval.{key}: {linear[key]} applies to features: augmented only "
                    "(features is embeddings: the stored embeddings of the centre crops)"
                )
    seeds = config.get("seeds", [])
    datasets = config.get("datasets", {})
    for table, spec in config.get("tables", {}).items():
        for seed in spec.get("seeds") or []:
            if seed not in seeds:
                problems.append(
                    f"tables.{table}.seeds: {seed} is not one of the config's seeds "
                    f"({', '.join(map(str, seeds))}); add it to seeds or drop it here"
                )
        if not spec.get("folds"):
            continue
        trained, any_of = _trained_datasets(spec)
        folds = {n: dataset_folds(datasets[n]) for n in trained if n in datasets}
        for fold in map(str, spec["folds"]):
            lacking = [n for n, known in folds.items() if fold not in known]
            if lacking and (len(lacking) == len(folds) or not any_of):
                name = lacking[0]
                problems.append(
                    f"tables.{table}.folds: '{fold}' is not a fold of dataset '{name}' "
                    f"(its folds: {', '.join(folds[name]) or 'none, it is for testing only'})"
                )
    return problems


def _trained_datasets(spec: dict) -> tuple[list[str], bool]:
    """The datasets whose folds a table's ``folds`` select, and whether a fold need only be one of
    some of them (a cross table: the sources' folds, a fixed-split source keeping its split)."""
    kind = spec.get("kind", "au_f1")
    if kind == "occurrence" or (kind == "au_f1" and spec.get("test_dataset")):
        return [], False  # no folds: every frame, or trained on all of the source
    if kind == "cross":
        return list(dict.fromkeys(pair[0] for pair in spec.get("pairs", []))), True
    if kind in ("grid", "cost"):
        return list(spec.get("datasets", [])), False
    return _as_list(spec.get("dataset")), False


def _as_list(value) -> list:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


#: the pretraining settings a method may set for itself (its ``pretrain:`` block): the views'
#: augmentation, so that a reading of AUNCE can bring its own (the released code's jitter and blur)
METHOD_PRETRAIN_KEYS = (
    "color_jitter", "blur", "jitter_strengths", "blur_kernel", "similarity", "resized_crop",
)  # fmt: skip


def resolved_pretrain(config: dict, method: dict | None = None) -> dict:
    """The ``pretrain`` settings of a validated config for ``method``'s runs: the config's, with the
    method's own ``pretrain:`` block merged over them (nested mappings merge key by key)."""
    pretrain = copy.deepcopy(config["pretrain"])
    return merge_config(pretrain, (method or {}).get("pretrain") or {})


def linear_eval_au_weights(method: dict | None) -> bool:
    """Whether the linear evaluation of ``method``'s encoders weights its WCE by lambda when
    ``linear_eval.au_weights`` is ``method``: as the method's pretraining loss does (Table 10's
    model A turns lambda off "for both WCE and AUNCE", Sec. 4.3.2), except for the released
    reading of AUNCE, whose loss ignores lambda while its linear evaluation weights by the fold's
    AU weights (linear_graph_au.py's au_softmax_loss; docs/losses.md)."""
    if method is None:
        return True
    if method.get("loss") == "aunce":
        from aunce.presets import effective_aunce

        settings = effective_aunce(method)
        return settings["variant"] == "released" or bool(settings["au_weights"])
    return bool(method.get("au_weights", True))


def resolved_linear_eval(
    config: dict, dataset: str | None = None, method: dict | None = None
) -> dict:
    """The ``linear_eval`` settings of a validated config as a job gets them: ``weight_decay`` and
    ``betas`` null mean the pretraining's (paper Sec. 4.1: AdamW "with the same settings as the
    pre-training phase"); a per-dataset ``augment`` mapping becomes ``dataset``'s value;
    ``au_weights: method`` becomes true or false for ``method`` (:func:`linear_eval_au_weights`;
    no method: true)."""
    linear = dict(config["linear_eval"])
    for key in ("weight_decay", "betas"):
        if linear.get(key) is None:
            linear[key] = config["pretrain"][key]
    if dataset is not None and isinstance(linear.get("augment"), dict):
        linear["augment"] = linear_eval_augment(linear["augment"], dataset)
    if linear.get("au_weights", "method") == "method":
        linear["au_weights"] = linear_eval_au_weights(method)
    return linear


def resolved_warm_start(config: dict, encoder: str) -> dict:
    """The ``warm_start`` settings of ``encoder``'s warm-start job: ``encoder_epochs`` gives some
    encoders their own epochs (and is left out, so that another encoder's budget reruns nothing)."""
    warm = dict(config.get("warm_start") or {})
    per_encoder = warm.pop("encoder_epochs", None) or {}
    if encoder in per_encoder:
        warm["epochs"] = per_encoder[encoder]
    return warm


def linear_eval_augment(augment: str | dict, dataset: str) -> str:
    """``linear_eval.augment`` for ``dataset``: crop or simclr (a mapping names datasets and a
    ``default``; crop for a dataset it names neither way)."""
    if isinstance(augment, dict):
        return augment.get(dataset, augment.get("default", "crop"))
    return augment


def dataset_kind(ds: dict) -> str:
    """The real dataset a config entry stands for: a synthetic profile stands for its dataset, a
    list-layout dataset for the dataset its ``list_name`` names (BP4D, DISFA, ...), else 'list'."""
    if ds["source"] == "synthetic":
        return ds["synthetic"]["profile"]
    if ds["source"] == "list" and ds.get("list_name"):
        key = "".join(c for c in ds["list_name"].lower() if c.isalnum() or c == "+")
        key = {"bp4d+": "bp4d_plus", "bp4dplus": "bp4d_plus"}.get(key, key)
        if key in CROSS_VALIDATED | FIXED_SPLIT | TEST_ONLY:
            return key
    return ds["source"]


def dataset_folds(ds: dict) -> list[str]:
    """Fold labels of a dataset entry: '1', '2', '3' for cross-validation, 'split' for a fixed split."""
    if ds["source"] == "list":  # the folds its list files hold, whatever dataset it stands for
        return [str(k) for k in range(1, ds.get("folds", 3) + 1)]
    kind = dataset_kind(ds)
    if kind in CROSS_VALIDATED:
        return ["1", "2", "3"]
    if kind in FIXED_SPLIT:
        return ["split"]
    if kind in TEST_ONLY:
        return []
    raise AunceError(f"unknown dataset kind '{kind}'")
