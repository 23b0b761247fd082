"""The offline phrasings of instruction data: MIR Q/A asks, captions, reasoning and transcription.

Used by llark.instructions.TemplateGenerator; every answer spells label values exactly as the labels do.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from llark.instruction_facts import (
    Facts, _DOUBLERS, _DYNAMIC_SHAPES, _GENERAL_DOUBLERS, _PENTATONIC, instrument_family, join_names, meter_description, meter_feel, number_word, scale_notes,
)

# ----------------------------------------------------------------------------- MIR Q/A phrasings


@dataclass(frozen=True)
class Ask:
    """Question and answer phrasings about one fact; `when` says whether a clip's facts allow it."""

    questions: tuple[str, ...]
    answers: tuple[str, ...]
    when: Callable[[Facts], bool] = lambda facts: True


def _has(*names: str) -> Callable[[Facts], bool]:
    return lambda facts: all(getattr(facts, name) for name in names)


MIR_ASKS: dict[str, tuple[Ask, ...]] = {
    "key": (Ask((
        "What key is this in?", "What key is this piece in?", "What is the key of this music?",
        "Which key is the music played in?", "Can you identify the key of this clip?", "In what key is this recording?",
        "Name the key of this excerpt.", "Tell me the key of this song.", "Which major or minor key does this piece use?",
        "What key does this track sit in?", "If you had to name the home key, what would it be?",
        "What is the tonic and mode of this music?", "Identify the key of the audio.", "What key would you say this is in?",
        "What is the musical key here?", "What's the key of this clip?", "Which key is this excerpt in?",
    ), (
        "It is in {key}.", "The key is {key}.", "{key}.", "This piece is in {key}.", "The music is in the key of {key}.",
        "It sounds like {key}.", "The home key is {key}: {tonic} is the tonal centre and the mode is {mode}.",
        "{key}, with {tonic} as the tonic.", "This excerpt is in {key}.", "It's in {key}.",
    ), _has("key")),),
    "mode": (Ask((
        "Is this in a major or a minor key?", "Is the mode major or minor?", "Does this sound major or minor?",
        "Is the tonality of this piece major or minor?", "Major or minor: which mode does this music use?",
        "Would you describe the harmony as major or minor?",
    ), (
        "It is in the {mode} mode: the key is {key}.", "The mode is {mode}: the piece is in {key}.",
        "The tonality is {mode}; it is in {key}.", "It sounds {mode}, in {key}.",
    ), _has("key")), Ask((
        "Is this piece in a {mode} key?", "Does this music use the {mode} mode?",
    ), ("Yes, it is in {key}.", "Yes: the key is {key}."), _has("key")), Ask((
        "Is this piece in a {other_mode} key?", "Does this music use the {other_mode} mode?",
    ), ("No, it is in {key}, so the mode is {mode}.", "No. The key is {key}."), _has("key"))),
    "tempo": (Ask((
        "What is the tempo of this piece?", "How fast is this music?", "What's the BPM?", "At what tempo is this played?",
        "How many beats per minute is this track?", "Can you estimate the tempo in BPM?",
        "What tempo would you set a metronome to in order to play along?",
        "What is the pace of this song in beats per minute?",
        "Tell me the tempo.", "How many BPM is this excerpt?", "Estimate the tempo of this clip.",
        "At roughly what BPM does this move?", "What is the tempo, in beats per minute?",
        "How quick is the pulse of this music?",
        "Give the tempo of this recording.", "What's the tempo here?",
    ), (
        "The tempo is about {bpm} BPM.", "About {bpm} BPM.", "It moves at around {bpm} beats per minute.",
        "Roughly {bpm} BPM, which feels {feel}.", "{bpm} BPM.", "The beat is at approximately {bpm} BPM.",
        "It is played at about {bpm} beats per minute, a {feel} tempo.", "Around {bpm} BPM.",
    ), _has("tempo")),),
    "tempo_feel": (Ask((
        "Is this fast or slow?", "Is the tempo fast, moderate or slow?", "Would you call this a slow or an up-tempo piece?",
        "How would you describe the speed of this music?", "Is this music quick or relaxed in pace?",
    ), (
        "It is {feel}, at about {bpm} BPM.", "The pace is {feel}: roughly {bpm} beats per minute.",
        "I'd call it {feel}; the tempo is around {bpm} BPM.",
    ), _has("tempo")),),
    "meter": (Ask((
        "What is the time signature?", "What meter is this in?", "What's the time signature of this piece?",
        "How would you count this: what is the meter?", "In what time signature is this music?",
        "What meter does this clip use?", "How many beats are in each bar, and what is the time signature?",
        "What is the metre of this excerpt?", "Tell me the time signature of this track.",
        "Which time signature would you notate this in?", "Identify the meter of this music.",
        "Is this in duple, triple or compound time? Give the time signature.",
    ), (
        "It is in {meter}.", "The time signature is {meter}.", "{meter}.", "The meter is {meter}, with {meter_desc}.",
        "This is in {meter} time.", "It's {meter}: {meter_desc}.", "{meter}, counted as {meter_desc}.",
    ), _has("meter")),),
    "instruments": (Ask((
        "What instruments are playing?", "Which instruments can you hear?", "What instruments are in this clip?",
        "Name the instruments in this recording.", "What is the instrumentation?", "Which instruments does this piece use?",
        "List the instruments you hear.", "What instruments make up this ensemble?",
        "What are the instruments in this track?",
        "Can you identify the instruments?", "Which instruments are featured here?",
        "Describe the instrumentation of this excerpt.", "What is this music played on?",
    ), (
        "I can hear {inst}.", "The instruments are {inst}.", "This is played by {inst}.", "{inst}.",
        "The instrumentation is {inst}.", "It features {inst}.", "You can hear {inst} in this clip.",
    ), lambda f: len(f.instruments) > 1), Ask((
        "What instruments are playing?", "Which instruments can you hear?", "What is the instrumentation?",
        "Name the instruments in this recording.", "What is this music played on?", "Which instrument is playing?",
        "What instrument do you hear?", "Can you identify the instruments?",
    ), (
        "Only {inst}.", "It is played on {inst} alone.", "I can hear {inst}, playing solo.", "{inst}.",
        "The only instrument is {inst}.",
    ), lambda f: len(f.instruments) == 1)),
    "instrument_count": (Ask((
        "How many instruments are playing?", "How many different instruments can you hear?",
        "How many instruments make up this ensemble?", "Count the instruments in this clip.",
    ), (
        "{n_inst} instruments: {inst}.", "There are {n_words} instruments playing: {inst}.",
        "I count {n_words}: {inst}.",
    ), lambda f: len(f.instruments) > 1), Ask((
        "How many instruments are playing?", "How many different instruments can you hear?",
    ), ("Just one: {inst}.", "A single instrument, {inst}."), lambda f: len(f.instruments) == 1)),
    "drums": (Ask((
        "Are there drums in this clip?", "Does this track have drums?", "Can you hear a drum kit?",
        "Is there any percussion?",
    ), (
        "Yes, Drums are playing{along_drums}.", "Yes. The instruments are {inst}.",
    ), lambda f: f.drums), Ask((
        "Are there drums in this clip?", "Does this track have drums?", "Can you hear a drum kit?",
    ), (
        "No, there are no drums. The instruments are {inst}.", "No drums here. You can hear {inst}.",
    ), lambda f: bool(f.instruments) and not f.drums)),
    "instrument_presence": (Ask((
        "Is {one} part of this recording?", "Can you hear {one} in this clip?", "Does {one} play in this piece?",
    ), (
        "Yes, {one} is playing{along}.", "Yes. The instruments are {inst}.",
    ), lambda f: any(i != "Drums" for i in f.instruments)),),
    "melody": (Ask((
        "Which instrument plays the melody?", "What instrument carries the tune?", "Which instrument has the lead line?",
        "What plays the main melody here?", "Which instrument is the melody played on?",
    ), (
        "The melody is played by {melody}.", "{melody} carries the melody.", "{melody}.", "The tune is on {melody}.",
        "{melody} plays the lead line.",
    ), _has("melody")),),
    "genre": (Ask((
        "What genre is this?", "What genre is this song?", "What style of music is this?",
        "How would you classify the genre?", "Which genre does this clip belong to?", "What kind of music is this?",
        "What musical style does this piece represent?", "Can you name the genre?",
    ), (
        "The genre is {genre}.", "Its style is {genre}.", "I would classify it as {genre}.", "It sounds like {genre} music.",
        "It is {genre}.", "Stylistically, it is {genre}.",
    ), _has("genre")),),
    "dynamics": (Ask((
        "How loud is this music?", "What are the dynamics like?", "Is this played softly or loudly?",
        "What is the dynamic level of this clip?", "How intense is the volume of this performance?",
    ), (
        "The dynamics are {dynamics}.", "It is played at a {dynamics} dynamic level.", "The volume level is {dynamics}.",
        "Overall the dynamics are {dynamics}.",
    ), lambda f: bool(f.dynamics) and not f.dynamic_shape), Ask((
        "How does the loudness change over the clip?", "What are the dynamics like?", "Is this played softly or loudly?",
        "Does the volume stay the same throughout?",
    ), (
        "It is a {dynamics}, {dynamic_shape}.", "The dynamics change: a {dynamics}, {dynamic_shape}.",
        "It does not stay level. It is a {dynamics}, {dynamic_shape}.",
    ), lambda f: f.dynamic_shape)),
    "chords": (Ask((
        "What chords are played?", "Which chords can you hear?", "What is the chord progression?",
        "What harmony does this clip move through?", "Name the chords in this excerpt.",
    ), (
        "The chords are {chords}.", "It moves through {chords}.", "The progression goes {chords}.",
        "I hear {chords}.",
    ), _has("chords")), Ask((
        "What chord does it begin on?", "What is the first chord?", "Which chord opens this excerpt?",
    ), ("It opens on {first_chord}.", "The first chord is {first_chord}.", "{first_chord}."), _has("chords"))),
}
# The facts the evaluators score (and LLark's genre) come first in every clip's MIR pairs.
CORE_FACTS = ("key", "tempo", "meter", "instruments", "genre")


def _fields(facts: Facts, rng: random.Random) -> dict[str, Any]:
    """Every value a phrasing may name, computed once per clip (only for labels that exist)."""
    fields: dict[str, Any] = {}
    if facts.key:
        fields.update(key=facts.key, tonic=facts.tonic, mode=facts.mode,
                      other_mode="minor" if facts.mode == "major" else "major")
    if facts.tempo:
        fields.update(bpm=facts.bpm, feel=facts.feel)
    if facts.meter:
        fields.update(meter=facts.meter, meter_desc=meter_description(facts))
    if facts.instruments:
        one = rng.choice([i for i in facts.instruments if i != "Drums"] or ["Drums"])
        others = [i for i in facts.instruments if i != one]
        not_drums = [i for i in facts.instruments if i != "Drums"]
        fields.update(inst=join_names(facts.instruments), n_inst=number_word(len(facts.instruments)).capitalize(),
                      n_words=number_word(len(facts.instruments)), one=one,
                      along=f", along with {join_names(others)}" if others else ", on its own",
                      along_drums=f", along with {join_names(not_drums)}" if not_drums else "")
    fields.update({name: getattr(facts, name) for name in ("genre", "dynamics", "melody") if getattr(facts, name)})
    if facts.dynamic_shape:
        fields["dynamic_shape"] = _DYNAMIC_SHAPES[facts.dynamics]
    if facts.chords:
        fields.update(chords=join_names(facts.chords[:8]), first_chord=facts.chords[0])
    return fields


# ----------------------------------------------------------------------------- captioning

CAPTION_QUESTIONS = (  # LLark asked for captions with ~15 long and ~28 short phrasings
    "Describe this music in detail.", "Give a detailed description of this clip: tempo, key, instrumentation and mood.",
    "Write a rich caption for this piece of music.", "Can you describe everything you hear in this excerpt?",
    "Provide a thorough description of the audio: style, tempo, harmony and instruments.",
    "Describe the musical characteristics of this recording.",
    "Write a paragraph describing this track for a music library.",
    "Describe the sound, feel and instrumentation of this piece.", "Give me a full musical description of what you hear.",
    "Summarise the main musical features of this excerpt in a few sentences.",
    "Describe this clip as you would to someone who cannot hear it.", "Describe this music.", "Caption this clip.",
    "What does this sound like?", "Describe the audio.", "Describe this track.", "What is this music like?",
    "Summarize this clip.", "Write a caption for this audio.", "Describe the piece.", "Tell me about this music.",
    "Characterize this excerpt.", "How would you describe this?", "Describe what you hear.",
    "Give a short description of this clip.", "What's going on musically here?",
)
_FEEL_WORDS = {"slow": ("slow", "unhurried", "languid"), "moderate": ("moderately paced", "easygoing", "mid-tempo"),
               "fairly fast": ("brisk", "lively", "upbeat"), "fast": ("fast", "energetic", "driving")}
_MODE_WORDS = {"major": ("bright", "warm", "cheerful", "sunny"),
               "minor": ("wistful", "melancholic", "brooding", "dark-hued")}
_MOOD = {("major", "slow"): "calm and tender", ("major", "moderate"): "content and easygoing",
         ("major", "fairly fast"): "cheerful and lively", ("major", "fast"): "joyful and energetic",
         ("minor", "slow"): "melancholic and introspective", ("minor", "moderate"): "wistful and reflective",
         ("minor", "fairly fast"): "restless and dramatic", ("minor", "fast"): "urgent and driving"}
_TEXTURES = {2: "an intimate duo texture", 3: "a small-ensemble texture", 4: "a small-ensemble texture",
             5: "a full, layered texture"}


def caption(facts: Facts, rng: random.Random) -> str:
    """One rich description: tempo feel, key and mode, meter, instrumentation, texture, dynamics, style."""
    fields = _fields(facts, rng)
    adjectives = [rng.choice(_FEEL_WORDS[facts.feel])] if facts.tempo else []
    adjectives += [rng.choice(_MODE_WORDS[facts.mode])] if facts.key else []
    head = " ".join(filter(None, [", ".join(adjectives), rng.choice(("piece", "excerpt", "track", "performance"))]))
    where = [f"in {facts.key}"] if facts.key else []
    if facts.tempo:
        where.append(rng.choice(("at about {bpm} BPM", "moving at around {bpm} beats per minute",
                                 "at roughly {bpm} BPM")).format(**fields))
    # With neither key nor tempo there is nothing to open with but a bare noun: start with the rest.
    sentences = [f"{'An' if head[0] in 'aeiou' else 'A'} {head}" + "".join(" " + w for w in where) + "."
                 ] if adjectives or where else []
    middle = [_instruments_sentence(facts, rng, fields)] if facts.instruments or facts.melody else []
    if facts.genre:
        middle.append(rng.choice(("The style is {genre}.", "Stylistically it is {genre}.",
                                  "It has the character of {genre} music.")).format(**fields))
    if facts.meter:
        middle.append(f"The {facts.meter} meter ({fields['meter_desc']}) gives it {meter_feel(facts)}.")
    if facts.dynamic_shape:
        middle.append(rng.choice(("The dynamics follow a {dynamics}, {dynamic_shape}.",
                                  "Its loudness changes in a {dynamics}, {dynamic_shape}.")).format(**fields))
    elif facts.dynamics:
        middle.append(rng.choice(("It is played at a {dynamics} dynamic level.", "The dynamics stay {dynamics} throughout.",
                                  "Dynamically it sits at a {dynamics} level.")).format(**fields))
    if facts.chords:
        middle.append(rng.choice(("The harmony moves through {chords}.", "The chords run {chords}.")).format(**fields))
    rng.shuffle(middle)  # the order of the middle sentences varies; the opening and the close do not
    sentences += middle
    if facts.key and facts.tempo:
        mood = _MOOD[facts.mode, facts.feel]
        sentences.append(rng.choice((f"Overall it feels {mood}.", f"The result is {mood}.", f"The mood is {mood}.")))
    return " ".join(sentences)


def _instruments_sentence(facts: Facts, rng: random.Random, fields: dict[str, Any]) -> str:
    """Instrumentation, melody, texture and drums: kept together because the later sentences refer back."""
    n = len(facts.instruments)
    if n == 0:
        return f"{facts.melody} carries the melody."
    if n == 1:
        return rng.choice(("It is a solo performance on {inst}.", "The only instrument is {inst}, giving a sparse texture.",
                           "The only instrument is {inst}.")).format(**fields)
    if facts.melody in facts.instruments:
        rest = join_names([i for i in facts.instruments if i != facts.melody])
        sentences = [rng.choice((f"{facts.melody} carries the melody over {rest}.",
                                 f"{facts.melody} leads, accompanied by {rest}."))]
    else:
        sentences = [rng.choice(("The ensemble is {inst}.", "It is scored for {inst}.",
                                 "The instrumentation is {inst}.")).format(**fields)]
        sentences += [f"{facts.melody} carries the melody."] if facts.melody else []
    sentences.append(f"Together they make {_TEXTURES[min(n, 5)]}.")
    if facts.drums:
        sentences.append(rng.choice(("Drums keep a steady pulse underneath.", "Drums drive the rhythm.")))
    return " ".join(sentences)


# ----------------------------------------------------------------------------- reasoning

_SCENARIOS = {
    ("major", "slow"): "a quiet morning, reading, or winding down in the evening",
    ("major", "moderate"): "cooking, a walk in the park, or relaxed background music in a café",
    ("major", "fairly fast"): "a sunny road trip, tidying up, or an upbeat commercial",
    ("major", "fast"): "a workout, a party, or a festive celebration",
    ("minor", "slow"): "a rainy afternoon, late-night reflection, or a sad scene in a film",
    ("minor", "moderate"): "a thoughtful commute, studying, or the quieter moments of a drama",
    ("minor", "fairly fast"): "a suspenseful film scene, a tense video-game level, or a brisk run",
    ("minor", "fast"): "a chase scene, an intense workout, or a video-game boss fight",
}


@dataclass(frozen=True)
class Reasoning:
    """One kind of reasoning question: phrasings, an answer built from several facts, and what it needs."""

    questions: Callable[[Facts], tuple[str, ...]]
    answer: Callable[[Facts, random.Random], str]
    when: Callable[[Facts], bool]


def _mood(f: Facts, rng: random.Random) -> str:
    colour = "bright and open" if f.mode == "major" else "darker and more inward"
    text = (f"It is in {f.key}, and the {f.mode} mode tends to sound {colour}; at about {f.bpm} BPM the pace is "
            f"{f.feel}. Together that makes it feel {_MOOD[f.mode, f.feel]}.")
    if len(f.instruments) == 1:
        text += f" A single {f.instruments[0]} keeps it intimate."
    elif f.drums:
        text += " The Drums add physical momentum."
    return text


def _scenario(f: Facts, rng: random.Random) -> str:
    text = (f"With its {_MOOD[f.mode, f.feel]} character ({f.key}, about {f.bpm} BPM), it would suit "
            f"{_SCENARIOS[f.mode, f.feel]}.")
    if f.dynamics:
        text += (f" The dynamics ({f.dynamics}) matter too: they decide whether it stays in the background or asks "
                 "for attention.")
    return text


def _dance(f: Facts, rng: random.Random) -> str:
    top, bottom = f.meter_parts
    quick = f.feel in ("fairly fast", "fast")
    if bottom == 8 and top in (6, 12):
        dance = "a jig or another lilting folk dance" if quick else "a gentle, rocking sway, like a barcarolle"
    elif bottom == 8 and top == 9:
        dance = "a slip jig"
    elif top == 3:
        dance = "a quick Viennese-style waltz" if quick else "a waltz or a minuet"
    elif top == 2:
        dance = "a polka or a march" if quick else "a stately processional march"
    elif top == 4:
        dance = ("swing, a quickstep or energetic pop dancing" if quick else
                 "a foxtrot or relaxed social dancing" if f.feel == "moderate" else "a slow dance")
    else:
        dance = "a free, contemporary style rather than a ballroom dance, since the bars are uneven"
    text = f"It is in {f.meter} ({meter_description(f)}) at about {f.bpm} BPM, so it suits {dance}."
    if f.drums:
        text += " The drum part makes the beat easy for dancers to follow."
    elif f.instruments:
        text += " Without drums, dancers have to follow the accents of the melody and bass."
    return text


def _play_along(f: Facts, rng: random.Random) -> str:
    pentatonic = [scale_notes(f.tonic, f.mode)[d] for d in _PENTATONIC[f.mode]]
    text = (f"Play in {f.key}: the scale is {', '.join(scale_notes(f.tonic, f.mode))}, and {f.tonic} is home, so phrases "
            f"resolve well there. For simpler lines, the {f.tonic} {f.mode} pentatonic ({', '.join(pentatonic)}) "
            "avoids clashes.")
    if f.tempo:
        text += f" Set a metronome to about {f.bpm} BPM" + (f" and count in {f.meter}." if f.meter else ".")
    elif f.meter:
        text += f" Count it in {f.meter}: {meter_description(f)}."
    if f.chords:
        text += f" Follow the changes ({join_names(f.chords[:6])}) and land on chord tones when a chord arrives."
    return text


def _double(f: Facts, rng: random.Random) -> str:
    # Without a melody label nobody knows which part carries the tune, so the advice stays general.
    choices, why = _DOUBLERS.get(instrument_family(f.melody) if f.melody else "", _GENERAL_DOUBLERS)
    pick = rng.choice([c for c in choices if c not in f.instruments and c != f.melody] or list(choices))
    if f.melody:
        text = f"{f.melody} carries the tune, so {pick} could double it in unison or an octave above: {why}."
    else:
        text = (f"The arrangement has {join_names(f.instruments)}; adding {pick} to double the tune in unison or an "
                f"octave above would work, because {why}.")
    if f.key:
        text += f" Keep the doubled line in {f.key} and let it drop out at phrase ends so it does not crowd the texture."
    return text


def _change(f: Facts, rng: random.Random) -> str:
    # The current key and tempo come first, so a key or tempo parser still reads this clip's values.
    text = f"Right now it is in {f.key} at about {f.bpm} BPM. "
    if _brighter(f):
        raise_tempo = f"raise the tempo to around {round(f.bpm * 1.25)} BPM."
        if f.mode == "minor":
            text += f"Move it to {f.tonic} major, which keeps the tonic but brightens the colour, and {raise_tempo}"
        else:
            text += raise_tempo.capitalize()
        if f.instruments:  # what to do about drums is only said when the instrumentation is known
            text += " Push the Drums forward in the mix." if f.drums else " A steady drum groove would add energy."
    else:
        text += (f"Slow it to around {round(f.bpm * 0.7)} BPM and try the parallel minor ({f.tonic} minor) "
                 f"for a more reflective colour.")
        if f.instruments:
            text += (" Drop the Drums or play them with brushes." if f.drums else
                     " Thin out the texture so fewer parts play at once.")
    return text


def _brighter(f: Facts) -> bool:
    return f.mode == "minor" or f.feel in ("slow", "moderate")


def _produce(f: Facts, rng: random.Random) -> str:
    text = f"To recreate it you need {join_names(f.instruments)}."
    grid = " ".join(filter(None, (f"at about {f.bpm} BPM" if f.tempo else "", f"in {f.meter}" if f.meter else "")))
    text += f" Set the session {grid}" + (f" and keep everything in {f.key}." if f.key else ".")
    if f.drums:
        text += " Program or record the Drums first so the other parts lock to them."
    if f.genre:
        text += f" Keep the arrangement idiomatic for {f.genre}: its typical voicings and rhythms matter more than effects."
    if f.dynamic_shape:
        text += f" Automate the overall volume for the {f.dynamics}: {_DYNAMIC_SHAPES[f.dynamics]}."
    elif f.dynamics:
        text += f" Mix to a {f.dynamics} overall level to match the original feel."
    return text


REASONING = (
    Reasoning(lambda f: ("What mood does this music convey, and why?",
                         "How might this piece make a listener feel? Explain what in the music creates that feeling.",
                         "What emotions does this excerpt evoke, and which musical features are responsible?",
                         "Would this suit a happy or a sad film scene? Explain."), _mood, _has("key", "tempo")),
    Reasoning(lambda f: ("When would be a good time to listen to this?", "What setting or activity would suit this music?",
                         "Where might you hear music like this, and why does it fit?",
                         "Suggest a listening scenario for this clip."), _scenario, _has("key", "tempo")),
    Reasoning(lambda f: ("Could you dance to this? What kind of dance would fit?",
                         "What style of dance would suit this music, and why?",
                         "If you were choreographing this clip, what kind of steps would match it?"),
              _dance, _has("meter", "tempo")),
    Reasoning(lambda f: ("I want to improvise over this. What scale should I use and how should I count it?",
                         "How could a musician play along with this clip?",
                         "What would I need to know to jam along with this piece?",
                         "Give me tips for playing along with this music."), _play_along, _has("key")),
    Reasoning(lambda f: ("Which other instrument could double the melody, and why would it work?",
                         "If you wanted to add an instrument to reinforce the tune, what would you pick?",
                         "Suggest an instrument to double the melody in this piece and explain the choice."),
              _double, lambda f: bool(f.melody) or any(instrument_family(i) not in ("percussion", "bass")
                                                       for i in f.instruments)),
    Reasoning(lambda f: ("How could this be rearranged to sound brighter and more upbeat?",
                         "What would you change to make this piece feel happier?",
                         "A producer wants a more cheerful version of this. What should change?") if _brighter(f) else
              ("How could this be rearranged to sound calmer?", "What would make this piece more relaxed?",
               "How would you turn this into a gentle, reflective version?"), _change, _has("key", "tempo")),
    Reasoning(lambda f: ("How would you produce a track that sounds like this?",
                         "What would you need to recreate this sound?",
                         "If you were recording a cover of this, how would you set it up?"),
              _produce, lambda f: bool(f.instruments) and bool(f.tempo or f.meter)),
)

TRANSCRIPTION_QUESTIONS = (
    "Transcribe the melody in ABC notation.", "Write the melody of this clip in ABC notation.",
    "Can you notate this tune in ABC format?", "Give me the ABC notation for the melody you hear.",
    "Transcribe this tune as ABC.", "Write down the melody in ABC.", "What is the ABC transcription of this melody?",
    "Notate the main melody using ABC notation.",
)


