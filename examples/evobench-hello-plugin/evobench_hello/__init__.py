"""An example evobench plugin: registers the ``median`` method, the ``mae`` metric, the
``psnr-gain`` figure kind and the ``hello`` command.

Only light specs live here; the implementations (which import scipy and matplotlib) are named
by strings and imported when a run or a report needs them. Each addition is one registration:
the metric is scored in every cell whose suite block lists it, tabulated by ``evobench report
--metrics mae`` and gated by ``evobench compare --fail-on mae:0.01`` (lower is better, as its
spec says); the figure kind is drawn by ``evobench figures``.
"""

from evobench.api import FigureSpec, MethodSpec, MetricSpec, Param, hookimpl


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
def evobench_register_metrics(register):
    register(
        MetricSpec(
            name="mae",
            factory="evobench_hello.impl:mae",
            higher_is_better=False,
            label="MAE",
            decimals=4,
            summary="mean absolute error against the clean image",
            variant="float64, whole image (all pixels and channels), no clipping",
        )
    )


@hookimpl
def evobench_register_figures(register):
    register(
        FigureSpec(
            name="psnr-gain",
            factory="evobench_hello.impl:psnr_gain",
            title="PSNR gain over the input",
            summary="Mean PSNR gain over the corrupted input per method.",
            caption="PSNR gain over the corrupted input: one bar per method, the mean over "
            "every ok cell ({images}, {reps}) of its PSNR minus the input's.",
            order=35,
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
