"""The built-in suites as plain data (selector strings only; nothing is imported).

Each profile is a list of grid blocks; a profile's grid is the union of its blocks. ``smoke``
takes seconds (64 x 64 gray and a 48 x 48 RGB crop, a few epochs; about 35 s for denoise and
25 s for inpaint at ``-j auto`` on 2 cores) and is deterministic: CI compares it with a
committed baseline (results/baselines/README.md). ``quick`` takes minutes on a 2-core CPU (128 x 128 crops of embedded
images). ``paper`` pairs each published TVAE preset with its own image and noise level (hours on
a CPU; meant for a GPU or a cluster).
"""

from __future__ import annotations

BASELINES_DENOISE = ["noisy", "nlm", "tv", "wavelet", "bm3d"]
BASELINES_INPAINT = ["noisy", "biharmonic"]
# tvae at 10 epochs beats the noisy floor on both 64x64 crops (26.9 / 22.1 dB vs 20.2 denoising,
# 28.7 / 24.7 dB vs 17.4 / 15.0 mean-fill inpainting) in ~1 s of CPU a cell
SMOKE_LEARNED = ["tvae[epochs=10,H=16,S=8,P=2,C=2]", "gsvae[epochs=3,H=16]"]
# the engine's other options end to end, one tiny cell each, so CI's regression baseline covers
# them: G > 1 with fitness selection; crossover with sparseflip; H > 64 (keys of two words);
# the impute-then-train M-step of the inpainting presets (their "+" variants, LR schedule
# shortened to fit 10 epochs); RGB denoising and inpainting
SMOKE_TVAE_DENOISE = ["tvae[epochs=10,H=16,S=8,P=2,C=2,G=3,selection=fitness]",
                      "tvae[epochs=10,H=16,S=8,P=3,C=2,crossover=true,mutation=sparseflip]",
                      "tvae[epochs=5,H=72,S=8,P=2,C=2]"]
_IMPUTE = "H=16,hidden=16,S=8,P=2,C=2,half_cycle=1,lr_max=0.05,epochs=10"
SMOKE_TVAE_INPAINT = [f"tvae[preset=house-inpaint-50+,patch_size=5,{_IMPUTE}]"]
SMOKE_RGB = "skimage-rgb[images=astronaut,crop=48]"
SMOKE_TVAE_RGB = ["tvae[epochs=10,H=16,S=8,P=2,C=2,patch_size=5]"]
SMOKE_TVAE_RGB_INPAINT = [f"tvae[preset=castle-inpaint-50+,{_IMPUTE}]"]
# the learned zero-shot baselines (plugin evobench_zeroshot) at smoke size: each beats the noisy
# input by 2-11 dB on the 64x64 crops in 2-4 s of one CPU thread (zsn2n 30.0 / 26.4 dB, dip
# 30.7 / 26.1, noise2self 27.7 / 23.2, self2self 27.1 / 22.6 vs 20.2 noisy; inpainting 50 %:
# dip 31.1 / 26.9, self2self 29.9 / 25.3 vs 18.0 / 15.0 mean fill)
SMOKE_ZSN2N = "zsn2n[iterations=300]"
SMOKE_ZEROSHOT_DENOISE = [SMOKE_ZSN2N, "dip[iterations=300,ema=0.95]",
                          "noise2self[iterations=150]", "self2self[iterations=150,ensemble=8]"]
SMOKE_ZEROSHOT_INPAINT = ["dip[iterations=300,ema=0.95]", "self2self[iterations=150,ensemble=8]"]
ZEROSHOT_DENOISE = ["zsn2n", "dip", "noise2self", "self2self"]
ZEROSHOT_INPAINT = ["dip", "self2self"]
# the main job's learned methods: TVAE, GSVAE and the fastest learned zero-shot peer
QUICK_LEARNED = ["tvae[epochs=20]", "gsvae[epochs=20]", "zsn2n"]
SCORED = ["psnr", "ssim"]  # the metrics every block scores

SMOKE_GRAY = "skimage[images=camera,coins,crop=64]"
QUICK_GRAY = "skimage[images=camera,coins,crop=128]"
QUICK_RGB = "skimage-rgb[images=astronaut,crop=96]"


# the paper's TVAE experiments twice: as published, and with evobench's improvements ("+")
PUBLISHED_LABEL = "TVAE (published settings)"
EVOBENCH_LABEL = "TVAE (evobench settings)"


def _tvae_pair(preset: str) -> dict:
    """Both variants of one paper preset, labelled so each reads as one method in reports."""
    return {"methods": [f"tvae[preset={preset}]", f"tvae[preset={preset}+]"],
            "labels": {f"tvae[preset={preset}]": PUBLISHED_LABEL,
                       f"tvae[preset={preset}+]": EVOBENCH_LABEL}}


def _block(datasets, degradations, methods=(), **extra) -> dict:
    return {"datasets": list(datasets), "degradations": list(degradations),
            "methods": list(extra.pop("methods", methods)), "metrics": SCORED, **extra}


DENOISE = {
    "smoke": [_block([SMOKE_GRAY], ["gaussian[sigma=25]"],
                     BASELINES_DENOISE + SMOKE_LEARNED + SMOKE_TVAE_DENOISE + [SMOKE_ZSN2N],
                     timeout="120s"),
              _block([SMOKE_RGB], ["gaussian[sigma=25]"], ["noisy"] + SMOKE_TVAE_RGB,
                     timeout="120s")],
    "quick": [
        _block([QUICK_GRAY], ["gaussian[sigma=15]", "gaussian[sigma=25]", "gaussian[sigma=50]"],
               BASELINES_DENOISE, timeout="10m"),
        _block([QUICK_GRAY], ["gaussian[sigma=25]"], QUICK_LEARNED, timeout="10m"),
    ],
    "paper": [
        _block(["set12[images=house]"], [f"gaussian[sigma={s}]"], **_tvae_pair(f"house-{s}"))
        for s in (15, 25, 50)
    ] + [
        _block(["set12[images=barbara]"], ["gaussian[sigma=25]"], **_tvae_pair("barbara-25")),
        _block(["set12[images=house]"], [f"gaussian[sigma={s}]" for s in (15, 25, 50)],
               BASELINES_DENOISE + ["gsvae"]),
        _block(["set12[images=barbara]"], ["gaussian[sigma=25]"],
               BASELINES_DENOISE + ["gsvae"]),
    ],
}

INPAINT = {
    "smoke": [_block([SMOKE_GRAY], ["inpaint[missing=0.5]"],
                     BASELINES_INPAINT + SMOKE_LEARNED + SMOKE_TVAE_INPAINT, timeout="120s"),
              _block([SMOKE_RGB], ["inpaint[missing=0.5,per=entry]"],
                     ["noisy"] + SMOKE_TVAE_RGB_INPAINT, timeout="120s")],
    "quick": [
        _block([QUICK_GRAY], ["inpaint[missing=0.5]", "inpaint[missing=0.8]"],
               BASELINES_INPAINT, timeout="10m"),
        _block([QUICK_RGB], ["inpaint[missing=0.5,per=entry]"], BASELINES_INPAINT,
               timeout="10m"),
        _block([QUICK_GRAY], ["inpaint[missing=0.5]"], QUICK_LEARNED, timeout="10m"),
    ],
    "paper": [
        _block(["set12[images=house]"], ["inpaint[missing=0.5]"], **_tvae_pair("house-inpaint-50")),
        _block(["castle"], ["inpaint[missing=0.5,per=entry]"], **_tvae_pair("castle-inpaint-50")),
        _block(["castle"], ["inpaint[missing=0.8,per=entry]"], **_tvae_pair("castle-inpaint-80")),
        _block(["set12[images=house]"], ["inpaint[missing=0.5]"], BASELINES_INPAINT + ["gsvae"]),
        _block(["castle"], ["inpaint[missing=0.5,per=entry]", "inpaint[missing=0.8,per=entry]"],
               BASELINES_INPAINT + ["gsvae"]),
    ],
}

# The learned zero-shot baselines against TVAE, BM3D and the classics: the question a reader of
# a zero-shot benchmark asks. smoke: seconds (CI's regression baseline); quick: 128 x 128 crops
# of House and Barbara (and Castle for inpainting), minutes on 2 cores; paper: Set12 at sigma
# 15/25/50 and the paper's inpainting images, every method at its defaults (hours on a CPU).
_SET12_QUICK = "set12[images=house,barbara,crop=128]"


def _plus(preset: str, others=()) -> dict:
    """A block's method list with TVAE's evobench-settings preset, labelled as in ``paper``."""
    tvae = f"tvae[preset={preset}+]"
    return {"methods": [*others, tvae], "labels": {tvae: EVOBENCH_LABEL}}


ZEROSHOT = {
    "smoke": [
        _block([SMOKE_GRAY], ["gaussian[sigma=25]"],
               ["noisy", "bm3d", SMOKE_LEARNED[0]] + SMOKE_ZEROSHOT_DENOISE, timeout="120s"),
        _block([SMOKE_GRAY], ["inpaint[missing=0.5]"],
               ["noisy", "biharmonic", SMOKE_LEARNED[0]] + SMOKE_ZEROSHOT_INPAINT,
               timeout="120s"),
    ],
    "quick": [
        _block([_SET12_QUICK], [f"gaussian[sigma={s}]" for s in (15, 25, 50)],
               BASELINES_DENOISE, timeout="10m"),
        _block([_SET12_QUICK], ["gaussian[sigma=25]"], ["tvae"] + ZEROSHOT_DENOISE,
               timeout="20m"),
        _block(["set12[images=house,crop=128]", "castle[crop=128]"], ["inpaint[missing=0.5]"],
               BASELINES_INPAINT + ["tvae"] + ZEROSHOT_INPAINT, timeout="20m"),
    ],
    "paper": [
        _block(["set12"], [f"gaussian[sigma={s}]" for s in (15, 25, 50)],
               BASELINES_DENOISE + ["tvae"] + ZEROSHOT_DENOISE, timeout="2h"),
        *[_block(["set12[images=house]"], [f"gaussian[sigma={s}]"], timeout="24h",
                 **_plus(f"house-{s}")) for s in (15, 25, 50)],
        _block(["set12[images=barbara]"], ["gaussian[sigma=25]"], timeout="24h",
               **_plus("barbara-25")),
        _block(["set12[images=house]"], ["inpaint[missing=0.5]"], timeout="24h",
               **_plus("house-inpaint-50", BASELINES_INPAINT + ZEROSHOT_INPAINT)),
        _block(["castle"], ["inpaint[missing=0.5,per=entry]"], timeout="24h",
               **_plus("castle-inpaint-50", BASELINES_INPAINT + ZEROSHOT_INPAINT)),
        _block(["castle"], ["inpaint[missing=0.8,per=entry]"], timeout="24h",
               **_plus("castle-inpaint-80", BASELINES_INPAINT + ZEROSHOT_INPAINT)),
    ],
}

# The paper grid is both tasks; its smoke/quick profiles are the union of the two suites'.
PAPER = {profile: DENOISE[profile] + INPAINT[profile] for profile in ("smoke", "quick", "paper")}

SUITES = {
    "denoise": ("Gaussian denoising: classic baselines, BM3D, TVAE and GSVAE", DENOISE),
    "inpaint": ("inpainting of randomly missing pixels: baselines, TVAE and GSVAE", INPAINT),
    "paper": ("the ECML 2022 configurations: House sigma 15/25/50, Barbara sigma 25, House 50% "
              "and Castle 50%/80% missing", PAPER),
    "zeroshot": ("the learned zero-shot baselines (DIP, ZS-N2N, Noise2Self, Self2Self) beside "
                 "TVAE, BM3D and the classics: denoising and inpainting", ZEROSHOT),
}
