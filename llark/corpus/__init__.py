"""The labelled music corpus: generated pieces and real ABC tunes with exact labels, rendered to audio.

    from llark.corpus.generate import generate_piece     # progressions, melody, bass, drums, textures
    from llark.corpus.abc_tunes import list_tunes, tune_piece   # music21's public-domain ABC collections
    from llark.corpus.render import render_midi          # tinysoundfont + a General MIDI soundfont
    from llark.corpus.augment import augment             # seeded EQ, reverb, noise, gain

`preprocessing/make_corpus.py` puts them together into audio/, midi/ and tracks.jsonl
(docs/data-formats.md). `theory.py` holds the keys, chords, meters and GM families all of them share.
"""
