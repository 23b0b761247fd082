"""llark: an open, reproducible LLark-style music-understanding toolkit.

    pip install torch==2.13.0 && pip install -c constraints.txt -e '.[train,dev]'   # what `make` does
"""

from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="llark",
    version="0.1.0",
    description="Music understanding: audio clips and ABC scores in, text answers out (LLark + ChatMusician style)",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["llark", "llark.*"]),
    # the MIR encoder's fitted beat-level model and instrument tagger
    package_data={"llark.encoders": ["beat_level.json", "instrument_tagger.safetensors", "meter_model.json", "key_model.json"]},
    py_modules=["train", "evaluate", "evaluate_theory"],  # `llark train` / `llark evaluate[-theory]` run these
    install_requires=[
        "torch>=2.6",
        "transformers>=5.0,<6",
        "tokenizers>=0.21",
        "safetensors>=0.4",
        "numpy>=1.26",
        "pyyaml>=6.0",
        "tqdm>=4.66",
        "soundfile>=0.12",
        "soxr>=0.4",
        "peft>=0.13",
        "webdataset>=0.2.86",
    ],
    extras_require={
        "train": [],  # everything training needs is in install_requires; kept so `.[train]` stays valid
        # tinysoundfont renders MIDI but depends on pyaudio (playback only, needs portaudio headers):
        # install it with `pip install --no-deps tinysoundfont` (the Makefile does).
        # av (PyAV): ffmpeg's decoders for audio libsndfile cannot read (AAC/M4A, ALAC, WMA, ...; llark/audio.py)
        "preprocess": ["librosa>=0.10", "pretty_midi>=0.2.10", "music21>=9", "symusic>=0.5", "threadpoolctl>=3", "av>=14"],
        "eval": ["mir_eval>=0.7", "sacrebleu>=2.3", "matplotlib>=3.8", "librosa>=0.10", "symusic>=0.5", "pretty_midi>=0.2.10",
                 "scikit-learn>=1.3"],  # scikit-learn: benchmarks/feature_probe.py
        "serve": [],
        "cluster": ["ray[data]>=2.40"],  # preprocessing/extract_features.py --ray: a GPU actor pool on a Ray cluster
        "dev": ["pytest>=8", "pytest-xdist>=3.5", "matplotlib>=3.8"],
    },
    entry_points={"console_scripts": ["llark=llark.cli:main"]},
)
