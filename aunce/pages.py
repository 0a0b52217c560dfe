"""Markdown files of the run (a table, a figure, results/report.md) as self-contained HTML pages.

Snakemake's HTML report (``snakemake --report``) shows an HTML result inline and offers any other
file as a download; the rule ``report_page`` turns each table's and figure's Markdown into a page
so that the report shows it. Light on purpose (no pandas, no scipy): one job per page.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
import re
from pathlib import Path

from aunce import AunceError
from aunce.io import write_text

PAGE_STYLE = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1rem; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
img { max-width: 100%; }
code { font-size: 12px; }
"""


def markdown_page(md_path: str | os.PathLike, out_path: str | os.PathLike | None = None) -> str:
    """One self-contained HTML page from a Markdown file (a table, a figure, results/report.md).

    Python-Markdown with its ``tables`` extension renders the pipe tables the harness writes; every
    image is embedded as a data URI (its path is relative to the Markdown file's folder), because
    Snakemake's report shows a page from a data URI where relative links lead nowhere. Written
    atomically to ``out_path`` when given. Raises AunceError naming a missing file or image."""
    import markdown

    md_path = Path(md_path)
    if not md_path.is_file():
        raise AunceError(f"report page: missing input file {md_path}")
    text = md_path.read_text()
    body = markdown.markdown(text, extensions=["tables"], output_format="html")

    def embed(match: re.Match) -> str:
        src = html.unescape(match.group(2))
        if src.startswith(("data:", "http:", "https:")):
            return match.group(0)
        image = md_path.parent / src
        if not image.is_file():
            raise AunceError(f"report page: image {image} (linked from {md_path}) not found")
        mime = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
        data = base64.b64encode(image.read_bytes()).decode()
        return f"{match.group(1)}data:{mime};base64,{data}{match.group(3)}"

    body = re.sub(r'(<img\b[^>]*?\bsrc=")([^"]*)(")', embed, body)
    heading = re.search(r"^#+ (.+)$", text, re.M)
    title = html.escape(heading.group(1) if heading else md_path.stem)
    page = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{PAGE_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
    if out_path is not None:
        write_text(out_path, page)
    return page
