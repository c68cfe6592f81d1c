"""MkDocs hook: the command-line reference, generated from raysched's click commands at build time.

The page `reference/cli.md` holds the marker line below; the hook replaces it with one section per
command: its help (verbatim blocks, click's ``\\b``, keep their line breaks), its usage, and a table of
its arguments and options (names, type, default, the whole help text). Every cell is HTML-escaped here,
so a ``|`` or a ``<job>`` in a help text shows as written and cannot split a cell or vanish as a tag.
The default cell shows click's own default ("—" where the option has none: its help text says what
applies, e.g. a setting from the config file). `tests/unit/test_cli_reference.py` builds the site and
checks the rendered page against the click objects.
"""

from __future__ import annotations

import html
import inspect
import re
from collections.abc import Iterator
from typing import Any

import click

MARKER = "<!-- raysched: cli reference -->"
PAGE = "reference/cli.md"
NO_DEFAULT = "—"
VERBATIM = "\b"  # click's marker: the paragraph after it keeps its line breaks


def help_paragraphs(text: str | None) -> list[tuple[bool, str]]:
    """A click help text as (verbatim, text) paragraphs, cut at click's ``\\f`` as `--help` cuts it."""
    text = inspect.cleandoc(text or "").split("\f", 1)[0]
    out: list[tuple[bool, str]] = []
    for block in re.split(r"\n\s*\n", text):
        if not block.strip():
            continue
        if block.lstrip().startswith(VERBATIM):
            out.append((True, block.lstrip()[len(VERBATIM) :].strip("\n").rstrip()))
        else:
            out.append((False, " ".join(block.split())))
    return out


def _is_unset(value: Any) -> bool:
    return value is None or type(value).__name__ == "Sentinel"


def default_text(param: click.Parameter) -> str:
    """The default a user gets from click itself: flags "off"/"on", values as typed, "required" or "—"."""
    if isinstance(param, click.Argument):
        return "required" if param.required else NO_DEFAULT
    if isinstance(param, click.Option) and param.is_flag and not param.count:
        return "on" if param.default is True else "off"
    value = param.default
    if callable(value) or _is_unset(value):
        return NO_DEFAULT
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) if value else NO_DEFAULT
    return str(value)


def type_text(param: click.Parameter, ctx: click.Context) -> str:
    """What the parameter takes, as `--help` names it, with an integer or float range spelled out."""
    if isinstance(param, click.Option) and param.is_flag:
        return "flag"
    kind = param.type
    if isinstance(param, click.Argument):
        return kind.name.upper() + (" (one or more)" if param.nargs == -1 else "")
    if "|" in kind.name:  # raysched's word-or-number flags (C|off, S|auto): as written, not upper-cased
        text = kind.name
    else:
        text = param.make_metavar(ctx)
    if isinstance(kind, click.types._NumberRangeBase):
        bounds = []
        if kind.min is not None:
            bounds.append(f"≥ {kind.min}")
        if kind.max is not None:
            bounds.append(f"≤ {kind.max:,}")
        text = f"{text} ({', '.join(bounds)})" if bounds else text
    return text


def names_text(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return param.human_readable_name
    return ", ".join([*param.opts, *param.secondary_opts])


def param_help(param: click.Parameter) -> str:
    return " ".join((getattr(param, "help", None) or "").split())


def _inline(text: str) -> str:
    """Escaped text, with `backquoted` spans shown as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def _help_html(text: str | None) -> str:
    parts = []
    for verbatim, paragraph in help_paragraphs(text):
        if verbatim:
            parts.append(f'<pre class="cli-help"><code>{html.escape(paragraph)}</code></pre>')
        else:
            parts.append(f"<p>{_inline(paragraph)}</p>")
    return "\n".join(parts)


def _rows(command: click.Command, ctx: click.Context) -> Iterator[str]:
    for param in command.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        cells = (
            f"<code>{html.escape(names_text(param))}</code>",
            html.escape(type_text(param, ctx)),
            f"<code>{html.escape(default_text(param))}</code>",
            _inline(param_help(param)),
        )
        yield "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>"


def command_section(command: click.Command, ctx: click.Context, level: int) -> str:
    """One command: heading, help, usage, and the table of its parameters (raw HTML, escaped)."""
    path = ctx.command_path
    usage = f"{path} {' '.join(command.collect_usage_pieces(ctx))}"
    table = "\n".join(
        [
            '<table class="cli-options">',
            "<thead><tr><th>Option</th><th>Type</th><th>Default</th><th>Description</th></tr></thead>",
            "<tbody>",
            *_rows(command, ctx),
            "</tbody>",
            "</table>",
        ]
    )
    return "\n\n".join(
        [
            f"{'#' * level} `{path}`",
            _help_html(command.help),
            f'<pre class="cli-usage"><code>Usage: {html.escape(usage)}</code></pre>',
            table,
        ]
    )


def render_reference(group: click.Group, prog_name: str, level: int = 3) -> str:
    """The reference in Markdown: the group, then each of its commands in the order `--help` lists them."""
    root = click.Context(group, info_name=prog_name)
    sections = [command_section(group, root, level)]
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is None or command.hidden:
            continue
        sections.append(command_section(command, click.Context(command, info_name=name, parent=root), level))
    return "\n\n".join(sections) + "\n"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """MkDocs event: fill the marker of the CLI reference page."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its marker {MARKER!r}: the CLI reference would not be generated")
    from raysched.cli.main import cli

    return markdown.replace(MARKER, render_reference(cli, "raysched"))
