"""The evaluation tasks, one small file each, all behind `llark.evaluation.Task`."""

from llark.evaluation.tasks.abc_generation import AbcGenerationTask
from llark.evaluation.tasks.abc_transcription import AbcTranscriptionTask
from llark.evaluation.tasks.caption import CaptionTask
from llark.evaluation.tasks.genre import GenreTask
from llark.evaluation.tasks.instruments import InstrumentsTask
from llark.evaluation.tasks.key import KeyTask
from llark.evaluation.tasks.mcq import McqTask
from llark.evaluation.tasks.meter import MeterTask
from llark.evaluation.tasks.tempo import TempoTask
from llark.evaluation.tasks.text_match import ContainsTask, ExactTask

TASKS = {task.name: task for task in (KeyTask(), TempoTask(), MeterTask(), InstrumentsTask(), GenreTask(),
                                      CaptionTask(), McqTask(), AbcTranscriptionTask(), AbcGenerationTask(), ExactTask(),
                                      ContainsTask())}
