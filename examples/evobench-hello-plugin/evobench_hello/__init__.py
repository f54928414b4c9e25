"""An example evobench plugin: registers the ``median`` method and the ``hello`` command.

Only light specs live here; the implementation (which imports scipy) is named by a string and
imported when the method runs.
"""

from evobench.api import MethodSpec, Param, hookimpl


@hookimpl
def evobench_register_methods(register):
    register(
        MethodSpec(
            name="median",
            factory="evobench_hello.impl:run",
            tasks=frozenset({"denoise"}),
            summary="Median filter (scipy.ndimage), a classic non-learned baseline.",
            params=(Param("size", 3, int, low=1, high=15, help="filter window side in pixels"),),
            version="0.2.0",
        )
    )


@hookimpl
def evobench_register_commands(cli):
    import click

    @click.command("hello")
    def hello():
        """Say hello from the example plugin."""
        click.echo("hello from evobench-hello")

    cli.add_command(hello)
