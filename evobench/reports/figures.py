"""Paper figures regenerated from a results store (``evobench figures``): the machinery every
figure kind shares.

Figure kinds are plugins: each is a ``FigureSpec`` registered through the
``evobench_register_figures`` hook (the built-in kinds in ``evobench_standard.figures``), whose
factory follows the contract there: ``draw(data, *, image=None)`` returns ``[(name, Figure)]``
or a one-line reason to skip. ``make_figures`` draws every kind inside one style file
(``paper.mplstyle``) and saves the figures byte-stable: no dates in the file metadata unless
``SOURCE_DATE_EPOCH`` asks for one. A figure whose data is absent is skipped with a note, so a
run of baselines only still gets the figures it can have. The helpers a kind shares with the
others (``method_styles``, ``legend_right``, ``marker_edge``, ``wrap_label``) are public
through ``evobench.api``.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable
from pathlib import Path

from matplotlib import style
from matplotlib.figure import Figure

from evobench.errors import EvobenchError
from evobench.files import within
from evobench.reports.load import RunData
from evobench.reports.names import with_display_names
from evobench.reports.tables import method_spec
from evobench.specs import load_object

STYLE = Path(__file__).with_name("paper.mplstyle")
FORMATS = ("png", "pdf", "svg")
# Okabe-Ito (colour-blind safe) without its yellow, which vanishes on white, and without its
# black, which next to the gray reference read as the noisy input; then Tol's wine, indigo,
# olive and teal: ten colours before any repeats.
PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#882255",
           "#332288", "#999933", "#44AA99"]
# Methods also differ in marker and line style, so they stay apart in grayscale print and where
# points overlap; references (MethodSpec.reference: the corrupted input) are gray and dotted,
# with the only cross ('x'): no method gets a cross-like marker; eleven markers against ten
# colours, so no two of the first 110 methods look alike.
MARKERS = ["o", "s", "^", "D", "v", "P", "*", "p", "h", "<", ">"]
LINESTYLES = ["-", "--", "-.", (0, (5, 1, 1, 1, 1, 1))]
REFERENCE_STYLE = {"color": "#666666", "marker": "x", "linestyle": ":"}


def method_styles(labels, methods) -> dict[str, dict]:
    """Colour, marker and line style per label (``labels`` and the ``methods`` they belong to,
    side by side, e.g. a results frame's ``method_label`` and ``method`` columns); the same
    labels get the same styles in every figure. The methods' specs decide: references
    (``MethodSpec.reference``) are gray and dotted; ranked methods (``MethodSpec.rank``) take
    the first, strongest styles, lower rank first; the others follow in order of appearance. A
    method whose plugin is not installed here is an unranked contender."""
    method_of: dict = {}
    for lab, method in zip(labels, methods):
        method_of.setdefault(lab, method)
    specs = {m: method_spec(m) for m in set(method_of.values())}
    ranks = {m: (s.rank is None, s.rank or 0) if s else (True, 0) for m, s in specs.items()}
    out, i = {}, 0
    for lab in sorted(method_of, key=lambda lab: ranks[method_of[lab]]):
        spec = specs[method_of[lab]]
        if spec is not None and spec.reference:
            out[lab] = dict(REFERENCE_STYLE)
            continue
        out[lab] = {"color": PALETTE[i % len(PALETTE)], "marker": MARKERS[i % len(MARKERS)],
                    "linestyle": LINESTYLES[i % len(LINESTYLES)]}
        i += 1
    return out


def wrap_label(label: str, width: int = 24) -> str:
    """Long method labels (``tvae[C=2,H=16,...]``) broken after commas so titles do not collide."""
    if len(label) <= width:
        return label
    lines, line = [], ""
    for part in re.split(r"(?<=[,\[])", label):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    return "\n".join([*lines, line])


def marker_edge(style: dict, width: float = 0.6) -> dict:
    """Marker edges: a thin white rim for filled markers (overlaps stay readable); line-only
    markers such as the reference's 'x' need their own colour, or they vanish."""
    if style["marker"] in ("x", "+", "1", "2", "3", "4", "|", "_"):
        return {"markeredgecolor": style["color"], "markeredgewidth": 1.3}
    return {"markeredgecolor": "white", "markeredgewidth": width}


def legend_right(fig: Figure, axes, title: str = "method", extra=()) -> None:
    """One legend for all panels, outside the axes, so it never covers data; ``extra`` adds
    (handle, label) pairs that explain the marks (instead of a title that could collide)."""
    handles, labels = {}, {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    for h, lab in extra:
        handles.setdefault(lab, h)
    labels = list(handles)
    fig.legend([handles[k] for k in labels], [wrap_label(k) for k in labels],
               loc="outside right upper", title=title)


def _metadata(fmt: str) -> dict:
    """File metadata without dates, unless SOURCE_DATE_EPOCH pins one (reproducible builds)."""
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return {}
    return {"pdf": {"CreationDate": None}, "svg": {"Date": None}}.get(fmt, {})


NAME_BYTES = 200  # a figure's file name stays well under the 255 bytes most file systems allow


def file_stem(name: str) -> str:
    """``name``, or where it is too long for a file name (a long image id) its start and a hash
    of the whole: the same name always gives the same, distinct stem."""
    raw = name.encode()
    if len(raw) <= NAME_BYTES:
        return name
    import hashlib

    head = raw[:NAME_BYTES - 17].decode(errors="ignore")
    return f"{head}-{hashlib.sha256(raw).hexdigest()[:16]}"


def save(fig: Figure, out: Path, name: str, formats) -> list[Path]:
    """Write ``fig`` as ``out/name.<fmt>`` for each format, with date-free metadata (a name too
    long for a file is shortened, :func:`file_stem`)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = file_stem(name)
    paths = []
    for fmt in formats:
        path = within(out, f"{name}.{fmt}")
        fig.savefig(path, format=fmt, metadata=_metadata(fmt))
        paths.append(path)
    return paths


class _Blanks(dict):
    def __missing__(self, key):  # a placeholder a caption does not know stays as written
        return "{" + key + "}"


def caption(kind, data: RunData) -> str:
    """The caption of ``kind``'s figures: its ``FigureSpec.caption`` with ``{images}``,
    ``{reps}`` and ``{spread}`` filled in from the runs' ok rows (else its summary, else its
    title)."""
    text = kind.caption or kind.summary or kind.title
    ok = data.results[data.results["status"] == "ok"]
    images = sorted(map(str, ok["image"].unique()))
    shown = ", ".join(images[:8]) + (", …" if len(images) > 8 else "")
    n_reps = int(ok["rep"].nunique()) if len(ok) else 0
    facts = _Blanks(images=f"{len(images)} image{'s' * (len(images) != 1)} ({shown})",
                    reps=f"{n_reps} repetition{'s' * (n_reps != 1)}",
                    spread=(f"error bars are ± one standard deviation over the {n_reps} "
                            "repetitions" if n_reps > 1 else "one repetition, so no error bars"))
    try:
        return text.format_map(facts)
    except (ValueError, IndexError):  # braces that are no placeholder: the text as written
        return text


def make_figures(data: RunData, out: str | Path, *, formats=("png",), image: str | None = None,
                 log: Callable[[str], None] | None = None, registry=None,
                 captions: dict[str, str] | None = None) -> tuple[list[Path], list[str]]:
    """Write every figure the data allows into ``out``, one registered kind after the other;
    return the files and the skip notes (a kind that fails is a note too, not a lost report).
    ``captions``, when given, receives each figure's caption by file stem (:func:`caption`)."""
    from evobench.errors import first_line
    from evobench.registry import get_registry

    formats = [f.strip().lower() for f in formats if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise EvobenchError(f"unknown figure format(s) {', '.join(bad) or '(none)'}; "
                            f"use {', '.join(FORMATS)}")
    if image is not None and image not in set(data.results["image"]):
        known = ", ".join(sorted(set(data.results["image"]))[:12])
        raise EvobenchError(f"image {image!r} is not in the results (images: {known})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    registry = registry or get_registry()
    kinds = sorted((registry.figure(n) for n in registry.names("figures")),
                   key=lambda k: (k.order, k.name))
    tasks = set(data.results["task"])
    # legends and titles show display names (``tvae (epochs=20)``), methods in rank order
    data = dataclasses.replace(data, results=with_display_names(data.results))
    written, notes = [], []
    with style.context(STYLE):
        for kind in kinds:
            if kind.tasks and not kind.tasks & tasks:
                continue  # a figure for a task the runs do not have: left out without a note
            try:
                result = load_object(kind.factory)(data, image=image)
            except Exception as exc:  # noqa: BLE001 - one broken kind must not cost the rest
                result = f"failed: {type(exc).__name__}: {first_line(exc)}"
            if isinstance(result, str):
                notes.append(f"skipped {kind.title}: {result}")
                if log:
                    log(notes[-1])
                continue
            try:  # matplotlib draws at savefig: absurd values (sigma=1e308) fail only here
                for name, fig in result:
                    written += save(fig, out, name, formats)
                    if captions is not None:
                        captions[file_stem(name)] = caption(kind, data)
            except OSError:
                raise  # a full disk or a name too long: the command's exit code 4
            except Exception as exc:  # noqa: BLE001 - one broken kind must not cost the rest
                notes.append(f"skipped {kind.title}: failed to draw: {type(exc).__name__}: "
                             f"{first_line(exc)}")
                if log:
                    log(notes[-1])
    for line in data.damaged.values():  # the figures were drawn without these panels
        notes.append(f"left out of the figures: {line}")
        if log:
            log(notes[-1])
    _forget_stale(out, written)
    return written, notes


FIGURE_LIST = ".evobench-figures"  # the files the last make_figures wrote into a folder


def _sha256(path: Path) -> str | None:
    import hashlib

    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _forget_stale(out: Path, written: list[Path]) -> None:
    """Delete the figures a previous report wrote into ``out`` that this one did not (a kind
    whose data is gone, a format no longer asked for), so a folder never shows figures of older
    results. ``FIGURE_LIST`` records each written file's SHA-256 (``<sha256>  <name>`` lines); a
    listed file is deleted only while its content still has that hash, so a file evobench did
    not write (or one changed since) is left alone, whatever the list says."""
    import contextlib

    from evobench.files import atomic_write

    listing = within(out, FIGURE_LIST)
    names = {p.name for p in written}
    try:
        before = listing.read_text().split("\n")
    except (OSError, UnicodeDecodeError):
        before = []
    for line in before:
        digest, _, name = line.partition("  ")
        if not name or name in names or Path(name).name != name or len(digest) != 64:
            continue  # an old list without hashes, or a name that is not a plain file name
        try:
            path = within(out, name)
        except EvobenchError:
            continue
        if path.is_file() and not path.is_symlink() and _sha256(path) == digest:
            with contextlib.suppress(OSError):
                path.unlink()
    record = sorted((name, _sha256(out / name)) for name in names)
    atomic_write(listing, "".join(f"{h}  {n}\n" for n, h in record if h).encode(), root=out)
