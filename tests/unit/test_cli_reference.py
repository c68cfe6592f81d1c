"""The command-line reference as a reader's browser gets it: the site is built, the page's HTML parsed.

For every command and every option the rendered row must carry the option's real default and its whole
help text, in exactly four cells (a `|` in a help text once split them), with no `Sentinel` anywhere;
verbatim help blocks (the Quick tour, bench's examples) keep their line breaks.
"""

from __future__ import annotations

import html
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field, fields
from html.parser import HTMLParser
from pathlib import Path

import click
import pytest

pytest.importorskip("mkdocs", reason="the docs build needs the docs extra: pip install -e '.[docs]'")

from raysched.cli.main import cli
from raysched.config import Settings

ROOT = Path(__file__).resolve().parents[2]
HOOK_PATH = ROOT / "docs" / "hooks" / "cli_reference.py"
_spec = importlib.util.spec_from_file_location("cli_reference_hook", HOOK_PATH)
assert _spec is not None and _spec.loader is not None
hook = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hook)


@dataclass
class Section:
    """What the page shows for one command: its paragraphs, verbatim blocks, usage and table rows."""

    paragraphs: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    usage: str = ""
    rows: list[list[str]] = field(default_factory=list)


class ReferencePage(HTMLParser):
    """Splits the built page into one `Section` per `<h3>` command heading."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: dict[str, Section] = {}
        self.text = ""
        self._current: Section | None = None
        self._capture: str | None = None  # "h3", "p", "pre", "td", "th"
        self._pre_class = ""
        self._buffer: list[str] = []
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = dict(attrs).get("class") or ""
        if tag == "h3":
            self._start("h3")
        elif self._current is not None and self._capture is None:
            if tag == "p":
                self._start("p")
            elif tag == "pre":
                self._pre_class = classes
                self._start("pre")
            elif tag == "tr":
                self._row = []
            elif tag in ("td", "th") and self._row is not None:
                self._start(tag)
        elif tag == "a" and self._capture == "h3":
            self._capture = "h3-link"  # the permalink's ¶ is not part of the title

    def _start(self, what: str) -> None:
        self._capture = what
        self._buffer = []

    def handle_endtag(self, tag: str) -> None:
        text = "".join(self._buffer)
        if tag == "a" and self._capture == "h3-link":
            self._capture = "h3"
        elif tag == "h3" and self._capture == "h3":
            self._current = self.sections.setdefault(text.strip(), Section())
            self._capture = None
        elif self._current is None:
            return
        elif tag == "p" and self._capture == "p":
            self._current.paragraphs.append(" ".join(text.split()))
            self._capture = None
        elif tag == "pre" and self._capture == "pre":
            if "cli-usage" in self._pre_class:
                self._current.usage = text
            elif "cli-help" in self._pre_class:
                self._current.blocks.append(text)
            self._capture = None
        elif tag in ("td", "th") and self._capture == tag and self._row is not None:
            self._row.append(" ".join(text.split()))
            self._capture = None
        elif tag == "tr" and self._row is not None:
            if self._row and self._row[0] != "Option":
                self._current.rows.append(self._row)
            self._row = None
        elif tag == "h2":
            self._current = None

    def handle_data(self, data: str) -> None:
        self.text += data
        if self._capture in ("h3", "p", "pre", "td", "th"):
            self._buffer.append(data)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the whole site once, strictly, as CI does."""
    site = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    return site


@pytest.fixture(scope="module")
def page(site: Path) -> ReferencePage:
    """The CLI reference page of the built site, parsed."""
    parser = ReferencePage()
    parser.feed((site / "reference" / "cli" / "index.html").read_text())
    return parser


def commands() -> list[tuple[str, click.Command, click.Context]]:
    root = click.Context(cli, info_name="raysched")
    out = [("raysched", cli, root)]
    for name in cli.list_commands(root):
        command = cli.commands[name]
        out.append((f"raysched {name}", command, click.Context(command, info_name=name, parent=root)))
    return out


def plain(text: str) -> str:
    """A help text as the reader sees it: whitespace collapsed, `code` marks gone."""
    return " ".join(text.replace("`", "").split())


def expected_default(param: click.Parameter) -> str:
    if isinstance(param, click.Argument):
        return "required"
    if isinstance(param, click.Option) and param.is_flag:
        return "on" if param.default is True else "off"
    if param.default is None or type(param.default).__name__ == "Sentinel":
        return "—"
    return str(param.default)


def rows_by_name(section: Section) -> dict[str, list[str]]:
    return {row[0]: row for row in section.rows}


COMMANDS = commands()


def test_the_page_never_shows_a_sentinel_or_a_raw_tag(page: ReferencePage) -> None:
    assert "Sentinel" not in page.text
    assert "UNSET" not in page.text


@pytest.mark.parametrize(("path", "command", "ctx"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_every_option_shows_its_default_and_whole_help_in_four_cells(
    page: ReferencePage, path: str, command: click.Command, ctx: click.Context
) -> None:
    section = page.sections.get(path)
    assert section is not None, f"no section for {path}; sections: {sorted(page.sections)}"
    assert all(len(row) == 4 for row in section.rows), [row for row in section.rows if len(row) != 4]
    rows = rows_by_name(section)
    params = [p for p in command.get_params(ctx) if not getattr(p, "hidden", False)]
    assert len(section.rows) == len(params)
    for param in params:
        name = hook.names_text(param)
        assert name in rows, f"{path}: no row for {name}"
        _, kind, default, description = rows[name]
        assert default == expected_default(param), (path, name, default)
        assert description == plain(getattr(param, "help", None) or ""), (path, name)
        assert kind, (path, name)


@pytest.mark.parametrize(("path", "command", "ctx"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command_help_keeps_its_paragraphs_and_line_breaks(
    page: ReferencePage, path: str, command: click.Command, ctx: click.Context
) -> None:
    section = page.sections[path]
    text = inspect.cleandoc(command.help or "").split("\f", 1)[0]
    verbatim = [b.strip("\n") for b in text.split("\b")[1:]]
    for block in verbatim:
        lines = [line.rstrip() for line in textwrap.dedent(block.split("\n\n", 1)[0]).splitlines() if line.strip()]
        assert any(shown.splitlines() == lines for shown in section.blocks), (path, lines, section.blocks)
    for is_block, paragraph in hook.help_paragraphs(command.help):
        if not is_block:
            assert plain(paragraph) in section.paragraphs, (path, paragraph)
    assert section.usage.startswith(f"Usage: {path} ")


def test_the_quick_tour_keeps_one_example_a_line(page: ReferencePage) -> None:
    tour = next(b for b in page.sections["raysched"].blocks if b.startswith("Quick tour:"))
    assert len(tour.splitlines()) == 8
    assert tour.splitlines()[2].strip() == "raysched submit job.py --policy p2c --address auto"


def test_regressions_named_in_issue_30(page: ReferencePage) -> None:
    submit = rows_by_name(page.sections["raysched submit"])
    policy = submit["--policy, -p"]
    assert policy[3] == "hash | random | p2c | greedy | pack | module:Name (your own). Default: hash."
    assert submit["--service-policy"][2] == "—" and "Default: greedy." in submit["--service-policy"][3]
    assert submit["--load-factor"][1] == "C|off" and submit["--locality-wait"][1] == "S|auto"
    assert "Default: results/<job>-<policy>-<UTC time>.csv." in submit["--out"][3]
    assert submit["--batch"][3].startswith("Tiny tasks per Ray task.")
    bench = rows_by_name(page.sections["raysched bench"])
    assert bench["--overcommit"][3] == "Passed to every raysched run (X|auto)."
    assert bench["--task-ms"][2] == "0,10"


def test_submit_help_states_the_settings_defaults(page: ReferencePage) -> None:
    """Where submit's default lives in `Settings` (click's is None), the description names that value."""
    submit = page.sections["raysched submit"]
    descriptions = {row[0].split(",")[0]: row[3] for row in submit.rows}
    defaults = Settings()
    checked = 0
    for setting in fields(Settings):
        flag = "--" + setting.name.replace("_", "-")
        value = getattr(defaults, setting.name)
        if flag in descriptions and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            assert str(value) in descriptions[flag], (flag, value, descriptions[flag])
            checked += 1
    assert checked >= 5


def test_help_text_is_escaped_not_parsed() -> None:
    """The hook escapes every cell: markup in a help text shows as written."""
    command = click.Command("demo", params=[click.Option(["--x"], help="a | b <job> *c*")], help="`code` & more")
    section = hook.command_section(command, click.Context(command, info_name="demo"), 3)
    assert "a | b &lt;job&gt; *c*" in section
    assert "<p><code>code</code> &amp; more</p>" in section
    assert html.unescape("&lt;job&gt;") == "<job>"


def test_the_site_loads_nothing_from_a_font_service(site: Path) -> None:
    """Issue 30: every page fetched fonts from a public font CDN; the theme uses the system's fonts."""
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    remote = [
        str(p.relative_to(site)) for p in pages if "fonts.googleapis" in (text := p.read_text()) or "gstatic" in text
    ]
    assert not remote, remote
