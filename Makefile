# make demo   set up .venv (once) and run the main job on the embedded default: corpus -> features -> Q/A ->
#             shards -> train tiny (two stages) -> evaluate -> answer questions (~20-25 min on 2 cores)
# make test   set up .venv (once) and run the whole test suite (what CI runs)
# make test-fast   the same without the slow end-to-end tests (pytest -m "not slow")
# make demo-soundfont   make demo, then also the test pieces rendered with another soundfont (FluidR3_GM, fetched
#             from Debian with apt-get download; or SOUNDFONT=/path/to/any.sf2), evaluated the same way (~3 min more)
# make demo-scores  make demo-soundfont, then also 107 real compositions (music21's corpus: Bach chorales, Haydn,
#             Mozart and Beethoven quartet movements, none of them among the demo's training scores)
#             orchestrated afresh, in both soundfonts (~6 min more)
# make demo-probe  the spine in ~30 s: the debug model on the probe task (which feature channel is loudest)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.llark-installed
PYTEST_ARGS ?=

.PHONY: demo demo-soundfont demo-scores demo-probe test test-fast benchmarks clean

# Re-installs when setup.py or the pins change; torch goes first so nothing pulls a CUDA build.
$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q torch==2.13.0 -c constraints.txt
	$(PY) -m pip install -q -c constraints.txt -e '.[train,preprocess,eval,cluster,dev]'
	$(PY) -m pip install -q --no-deps -c constraints.txt tinysoundfont
	# librosa compiles its numba kernels on first use and caches them in site-packages; test processes
	# compiling at once can corrupt that cache (segfaults), so one process fills it here, once.
	$(PY) -c "import numpy as np; from llark.encoders.mir import MIRFeatureEncoder; from llark.annotate import \
	annotate, classic_key, classic_tempo; w = np.random.default_rng(0).uniform(-0.5, 0.5, 6 * 22050).astype(np.float32); \
	MIRFeatureEncoder().encode(w); annotate(w, 22050); classic_key(w, 22050); classic_tempo(w, 22050)"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q $(PYTEST_ARGS) tests

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow" $(PYTEST_ARGS) tests

demo: $(STAMP)
	$(PY) -m llark.demo

SOUNDFONT ?= data/soundfonts/FluidR3_GM.sf2
demo-soundfont: $(STAMP) $(SOUNDFONT)
	$(PY) -m llark.demo --soundfont-test $(SOUNDFONT)

demo-scores: $(STAMP) $(SOUNDFONT)
	$(PY) -m llark.demo --soundfont-test $(SOUNDFONT) --scores 60

# FluidR3_GM (MIT licence) from Debian's fluid-soundfont-gm package: downloaded and unpacked, not installed,
# so no root is needed; on a machine without apt, pass SOUNDFONT=/path/to/another.sf2.
data/soundfonts/FluidR3_GM.sf2:
	rm -rf data/soundfonts/.fetch && mkdir -p data/soundfonts/.fetch
	cd data/soundfonts/.fetch && apt-get download fluid-soundfont-gm || { echo "apt-get download \
	fluid-soundfont-gm failed (run apt-get update first?); or pass SOUNDFONT=/path/to/another.sf2" >&2; exit 1; }
	dpkg-deb -x data/soundfonts/.fetch/fluid-soundfont-gm_*.deb data/soundfonts/.fetch/root
	mv data/soundfonts/.fetch/root/usr/share/sounds/sf2/FluidR3_GM.sf2 $@
	rm -rf data/soundfonts/.fetch

DEMO := runs/demo-probe
demo-probe: $(STAMP)
	$(PY) preprocessing/make_probe_data.py --out data/probe
	$(PY) train.py --config configs/debug.yaml train.steps=300 train.out_dir=$(DEMO) train.log_every=50
	$(PY) evaluate.py --checkpoint $(DEMO)/checkpoints/step-000300 --manifest data/probe/test.jsonl \
		--out $(DEMO)/eval --ablations zeroed,shuffled
	head -n 4 data/probe/test.jsonl > data/probe/ask.jsonl
	$(VENV)/bin/llark ask --checkpoint $(DEMO)/checkpoints/step-000300 --manifest data/probe/ask.jsonl --out $(DEMO)/answers.jsonl
	cat $(DEMO)/answers.jsonl
	cat $(DEMO)/eval/report.md

benchmarks: $(STAMP)
	$(PY) benchmarks/train_step.py
	$(PY) benchmarks/train_step.py --compare compile --configs tiny --steps 40
	$(PY) benchmarks/encode.py
	$(PY) benchmarks/encode.py --rhythm --timbre
	$(PY) benchmarks/shards.py
	$(PY) benchmarks/corpus.py

clean:
	rm -rf runs data/probe data/demo data/demo-*
