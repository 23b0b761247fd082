"""Genre: accuracy of the first genre name in the answer (with synonyms), against the gold genre."""

from __future__ import annotations

import re

import numpy as np

# Canonical genre -> the spellings that name it. GTZAN's ten, common others, and the corpus's style tags.
GENRES: dict[str, tuple[str, ...]] = {
    "blues": ("blues",), "classical": ("classical", "orchestral", "baroque", "romantic era"),
    "country": ("country",), "disco": ("disco",), "hiphop": ("hip hop", "hip-hop", "hiphop", "rap"),
    "jazz": ("jazz", "swing", "bebop"), "metal": ("metal", "heavy metal"), "pop": ("pop",),
    "reggae": ("reggae", "ska", "dub"), "rock": ("rock", "rock and roll", "rock 'n' roll"),
    "electronic": ("electronic", "electronica", "edm", "techno", "house", "trance"), "folk": ("folk",),
    "ambient": ("ambient",), "funk": ("funk", "funky"), "soul": ("soul", "r&b", "rnb"), "latin": ("latin", "bossa nova", "salsa"),
    "waltz": ("waltz",), "march": ("march",), "reel": ("reel",), "jig": ("jig",), "hornpipe": ("hornpipe",),
    "ballad": ("ballad",), "lullaby": ("lullaby",), "chorale": ("chorale", "hymn"), "polka": ("polka",),
}
_SPELLINGS = sorted(((s, g) for g, names in GENRES.items() for s in names), key=lambda item: -len(item[0]))
_PATTERN = re.compile("|".join(rf"\b{re.escape(s)}\b" for s, _ in _SPELLINGS), re.IGNORECASE)
_BY_SPELLING = {s: g for s, g in _SPELLINGS}


def canonical_genre(text: str) -> str | None:
    match = _PATTERN.search(text)
    return _BY_SPELLING[match.group(0).lower()] if match else None


class GenreTask:
    name = "genre"
    constant = "rock"

    def parse(self, answer: str) -> str | None:
        return canonical_genre(answer)

    def parse_gold(self, gold) -> str:
        return canonical_genre(str(gold)) or str(gold).strip().lower()

    def metrics(self, predicted, gold) -> dict[str, float]:
        return {"accuracy": float(np.mean([p == g for p, g in zip(predicted, gold)]))}
