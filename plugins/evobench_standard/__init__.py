"""The standard plugin: datasets (Set12, BSD68, Castle, scikit-image's images, a user folder),
degradations (Gaussian noise, missing pixels, both), metrics (PSNR, SSIM), the suites and the
built-in figure kinds (``figures``, drawn by ``evobench figures`` and ``evobench report``).

Only specs live here: numpy, scikit-image and PIL are imported by ``datasets``,
``degradations`` and ``metrics`` when a run needs them, pandas and matplotlib by ``figures``
when a report draws.
"""

from __future__ import annotations

from evobench.api import (
    DatasetSpec,
    DegradationSpec,
    FigureSpec,
    MetricSpec,
    Param,
    SuiteSpec,
    hookimpl,
)

__version__ = "1.0"

_D = "evobench_standard.datasets"
_G = "evobench_standard.degradations"
_M = "evobench_standard.metrics"

SET12_NAMES = ("cameraman", "house", "peppers", "starfish", "monarch", "airplane", "parrot",
               "lena", "barbara", "boat", "man", "couple")
SET12_IDS = tuple(f"{i:02d}" for i in range(1, 13))
BSD68_IDS = tuple(f"test{i:03d}" for i in range(1, 69))
SKIMAGE_GRAY = ("camera", "moon", "coins", "brick", "grass", "gravel", "text", "page", "clock")
SKIMAGE_RGB = ("astronaut", "coffee", "chelsea", "rocket")
DNCNN = "cszn/DnCNN@e93b278 (testsets/)"

DATASETS = (
    DatasetSpec(name="set12", loader=f"{_D}:load_set12", images=SET12_IDS,
                aliases=dict(zip(SET12_NAMES, SET12_IDS)), files=f"{_D}:files_of",
                summary="Set12: 12 gray test images (02 = House, 09 = Barbara, as in the paper)",
                source=DNCNN, licence="research test images, no licence stated"),
    DatasetSpec(name="bsd68", loader=f"{_D}:load_bsd68", images=BSD68_IDS,
                files=f"{_D}:files_of", summary="BSD68: 68 gray Berkeley test images",
                source=DNCNN, licence="research test images, no licence stated"),
    DatasetSpec(name="castle", loader=f"{_D}:load_castle", images=("castle",), color="rgb",
                files=f"{_D}:files_of",
                summary="Castle: the RGB Berkeley image of the paper's inpainting benchmark",
                source="tvlearn/ecml2022@de99f01 (experiments/inpainting/img/castle.jpg)",
                licence="research test image, no licence stated"),
    DatasetSpec(name="skimage", loader=f"{_D}:load_skimage", images=SKIMAGE_GRAY,
                summary="gray images bundled with scikit-image (no download)",
                source="scikit-image data", licence="see skimage.data (public domain / CC0 "
                "for most)"),
    DatasetSpec(name="skimage-rgb", loader=f"{_D}:load_skimage_rgb", images=SKIMAGE_RGB,
                color="rgb", summary="RGB images bundled with scikit-image (no download)",
                source="scikit-image data", licence="see skimage.data"),
    DatasetSpec(name="folder", loader=f"{_D}:load_folder", images=(), lister=f"{_D}:list_folder",
                params=(Param("path", "", str, help="folder with .png/.jpg/.tif images"),
                        Param("color", "gray", str, choices=("gray", "rgb"),
                              help="convert every image to gray (luma) or RGB"),
                        Param("follow_links", False, bool,
                              help="also read symlinks that lead out of the folder")),
                summary="your own images: folder[path=DIR] (PNG, JPEG, TIFF)"),
)

_PER = Param("per", "pixel", str, choices=("pixel", "entry"),
             help="a missing pixel loses all channels, or each channel entry independently")
_MISSING = Param("missing", 0.5, float, low=0.0, high=0.99, help="fraction of missing entries")
_SIGMA = Param("sigma", 25.0, float, low=0.0, help="noise std on the 0-255 scale")

DEGRADATIONS = (
    DegradationSpec(name="gaussian", factory=f"{_G}:gaussian", task="denoise", params=(_SIGMA,),
                    summary="additive white Gaussian noise, sigma on the 0-255 scale, no clipping"),
    DegradationSpec(name="inpaint", factory=f"{_G}:inpaint", task="inpaint",
                    params=(_MISSING, _PER),
                    summary="Bernoulli missing pixels (or channel entries), no noise"),
    DegradationSpec(name="inpaint_noise", factory=f"{_G}:inpaint_noise", task="inpaint",
                    params=(_MISSING, _SIGMA, _PER),
                    summary="missing pixels plus Gaussian noise on the observed ones"),
)

_WHOLE = "float64, whole image (all pixels and channels), no clipping, no quantisation"
METRIC_SPECS = (
    MetricSpec(name="psnr", factory=f"{_M}:psnr", label="PSNR", unit="dB", decimals=2,
               summary="skimage peak_signal_noise_ratio, whole image, float",
               variant=f"{_WHOLE}; skimage peak_signal_noise_ratio"),
    MetricSpec(name="ssim", factory=f"{_M}:ssim", label="SSIM", decimals=3, min_size=7,
               summary="skimage structural_similarity, 7x7 uniform window, channel_axis=-1 "
               "for RGB",
               variant=f"{_WHOLE}; skimage structural_similarity, 7x7 uniform window, "
               "channel_axis=-1 for RGB"),
)

_F = "evobench_standard.figures"
_MEAN = ("each point is the mean PSNR over {images} of the panel's dataset, averaged per "
         "repetition first; {spread}. Gray and dotted, where the run has it: the corrupted "
         "input's own PSNR.")
FIGURES = (
    FigureSpec(name="psnr-vs-noise", factory=f"{_F}:psnr_vs_noise", title="PSNR vs noise level",
               tasks=frozenset({"denoise"}), order=10,
               summary="PSNR against the noise level, one line per method",
               caption="Denoising quality against the noise level σ (0–255 scale), one line per "
               "method: " + _MEAN),
    FigureSpec(name="psnr-vs-missing", factory=f"{_F}:psnr_vs_missing",
               title="PSNR vs missing fraction", tasks=frozenset({"inpaint"}), order=20,
               summary="PSNR against the missing fraction, one line per method",
               caption="Inpainting quality against the fraction of missing pixels, one line per "
               "method: " + _MEAN),
    FigureSpec(name="psnr-vs-time", factory=f"{_F}:psnr_vs_time", title="PSNR vs wall time",
               order=30, summary="PSNR against wall time (log scale) per method and level",
               caption="Quality against cost: PSNR against the wall time per image (log scale). "
               "Small markers are single cells (one image, level and repetition of {images} and "
               "{reps}), large markers the mean per method and level. Wall time depends on the "
               "machine and its load (see the summary and the Runs table)."),
    FigureSpec(name="training-curves", factory=f"{_F}:training_curves",
               title="training curves", order=40,
               summary="free energy (or loss) and PSNR per epoch of the learned methods",
               caption="Training on the image named in the title: the objective per epoch (TVAE: "
               "free energy, GSVAE: loss; zero-shot methods: loss per iteration, second row) "
               "and PSNR at each evaluation, mean over the repetitions; the last PSNR point is "
               "the value in the tables."),
    FigureSpec(name="sparsity", factory=f"{_F}:sparsity", title="sparsity histograms", order=50,
               summary="active latents per patch of the methods with a latent code",
               caption="How many latents each patch uses: the normalised histogram of active "
               "latents per patch for the methods with a latent code (TVAE, GSVAE), pooled over "
               "the images named in the title and {reps}, one panel per level; the dashed line "
               "is the mean."),
    FigureSpec(name="fields", factory=f"{_F}:generative_fields", title="generative fields",
               order=60, summary="the generative fields of every method that stores them",
               caption="The generative fields each method learned on the image and level in the "
               "title (first repetition; at most 144 per method), each scaled on its own: "
               "mid-gray is 0, black and white its largest |w|."),
    FigureSpec(name="panels", factory=f"{_F}:restoration_panels", title="restoration panels",
               order=70, summary="clean / corrupted / restored images with their PSNR",
               caption="What the numbers look like: the clean image, its corrupted input (with "
               "the input's PSNR; missing pixels in red) and each method's restoration with "
               "its PSNR, for the image and level in the title, first repetition."),
)


@hookimpl
def evobench_register_datasets(register):
    for spec in DATASETS:
        register(spec)


@hookimpl
def evobench_register_degradations(register):
    for spec in DEGRADATIONS:
        register(spec)


@hookimpl
def evobench_register_metrics(register):
    for spec in METRIC_SPECS:
        register(spec)


@hookimpl
def evobench_register_suites(register):
    from evobench_standard.suites import SUITES

    for name, (summary, profiles) in SUITES.items():
        register(SuiteSpec(name=name, profiles=profiles, summary=summary))


@hookimpl
def evobench_register_figures(register):
    for spec in FIGURES:
        register(spec)
