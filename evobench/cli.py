"""The ``evobench`` command line.

Sub-commands live in their own modules and are imported only when invoked, so ``evobench
--help`` stays fast; plugins add commands through ``evobench_register_commands``. User errors
become one ``error: ...`` line and exit code 2; an OS error of any command (disk full, ``ulimit
-f``, a name too long, no permission) one ``error: ...`` line and exit code 4.
"""

from __future__ import annotations

import os
import sys

import click

from evobench import __version__

# name -> ("module:attribute", short help); imported on use only.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("evobench.harness.cli:run", "Run a suite (or a selection of it) and store results."),
    "data": ("evobench.data_cli:data", "Fetch and list datasets."),
    "list": ("evobench.plugin_cli:list_items", "List methods, datasets, degradations, metrics or suites."),
    "plugins": ("evobench.plugin_cli:plugins", "List plugins with version, status and licences."),
    "report": ("evobench.reports.cli:report", "Write comparison tables from stored runs."),
    "figures": ("evobench.reports.cli:figures", "Regenerate figures from stored runs."),
    "compare": ("evobench.reports.cli:compare", "Compare two runs cell by cell; exit 1 on regression."),
    "merge": ("evobench.reports.cli:merge", "Merge several runs into one."),
}


class UserError(click.ClickException):
    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class MachineError(UserError):
    """The machine refused (disk full, ``ulimit -f``, a name too long ...): exit code 4, as a
    run whose folder cannot be written."""

    exit_code = 4


_OS_HINTS = {
    "ENOSPC": "free some space and run the same command again",
    "EDQUOT": "free some space (disk quota) and run the same command again",
    "EFBIG": "raise the file size limit (ulimit -f) or write elsewhere",
    "ENAMETOOLONG": "use a shorter folder or name",
    "EROFS": "the file system is read-only; choose another output folder",
    "EACCES": "no permission: fix the folder's permissions or choose another (--out)",
}


def os_error_line(exc: OSError) -> str:
    """One line for an OS error of any command: what failed, on which file, what to do."""
    import errno

    code = errno.errorcode.get(exc.errno or 0, "")
    what = exc.strerror or type(exc).__name__
    where = f" ({exc.filename})" if exc.filename else ""
    hint = _OS_HINTS.get(code, "check the path and the machine, then run the command again")
    return f"{what}{f' [{code}]' if code else ''}{where}; {hint}"


class EvobenchGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(set(LAZY_COMMANDS) | set(self.commands) | set(self._plugin_commands(ctx)))

    def get_command(self, ctx, name):
        if name in self.commands:
            return self.commands[name]
        if name in LAZY_COMMANDS:
            from evobench.specs import load_object

            return load_object(LAZY_COMMANDS[name][0])
        return self._plugin_commands(ctx).get(name)

    def format_commands(self, ctx, formatter):
        rows = [(name, short) for name, (_, short) in sorted(LAZY_COMMANDS.items())]
        rows += [(n, c.get_short_help_str()) for n, c in sorted(self._plugin_commands(ctx).items())]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def _plugin_commands(self, ctx) -> dict[str, click.Command]:
        cached = getattr(self, "_plugin_cache", None)
        if cached is not None:
            return cached
        from evobench.registry import get_registry

        params = ctx.params if ctx is not None else {}
        _plugin_policy(params.get("disable_plugin"), params.get("strict_plugins"))
        holder = click.Group()
        get_registry().add_commands(holder)
        self._plugin_cache = {n: c for n, c in holder.commands.items() if n not in LAZY_COMMANDS}
        return self._plugin_cache

    def invoke(self, ctx):
        from evobench.errors import USER_ERRORS, first_line

        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            if os.environ.get("EVOBENCH_DEBUG"):
                raise
            raise UserError(first_line(exc)) from None
        except OSError as exc:  # disk full, ulimit -f, a name too long: exit 4, one line
            if os.environ.get("EVOBENCH_DEBUG"):
                raise
            raise MachineError(os_error_line(exc)) from None


@click.group(cls=EvobenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="evobench")
@click.option(
    "--disable-plugin",
    multiple=True,
    metavar="NAME",
    help="Do not load this plugin (repeatable; also EVOBENCH_DISABLE_PLUGINS=a,b).",
)
@click.option(
    "--strict-plugins",
    is_flag=True,
    help="Re-raise plugin errors instead of skipping the plugin (EVOBENCH_STRICT_PLUGINS=1).",
)
def cli(disable_plugin, strict_plugins):
    """Benchmark zero-shot image restoration: TVAE against BM3D, a Gumbel-softmax VAE and classic
    baselines, on standard denoising and inpainting datasets."""
    _plugin_policy(disable_plugin, strict_plugins)


def _plugin_policy(disable_plugin, strict_plugins) -> None:
    """``--disable-plugin`` and ``--strict-plugins``, for the registry built next."""
    if disable_plugin or strict_plugins:
        from evobench.registry import plugin_policy

        plugin_policy(blocked=disable_plugin or (), strict=bool(strict_plugins))


def main(argv=None) -> None:
    sys.exit(cli.main(args=argv, prog_name="evobench", standalone_mode=True))
