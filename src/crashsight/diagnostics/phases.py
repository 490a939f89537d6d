"""Which phase of a training job the work was in when it failed: data, training, evaluation, ...

A log names phases the way its author chose (``[PreTokenize]``, ``EVAL``, ``SFT``), and the record
of a failure is often written by a wrapper (``[Main]``, a job runner) that knows nothing of the
phase the work was in. So the kind of a failure's phase is decided from the best evidence at hand,
in this order, and the evidence is recorded as its ``basis``:

1. ``field``: the record's own phase, when it names a kind of work (``[Evaluation]``);
2. ``traceback``: the frames of its traceback, root cause first, innermost frame first
   (``evaluate``, ``eval_step``, ``prediction_step`` → evaluation; ``training_step``, ``backward``
   → training; ``save_checkpoint`` → checkpoint), from `FRAME_KINDS`;
3. ``marker``: the last phase declared before the failure that names a kind of work (a
   ``[Evaluation]`` record or a ``***** Running Evaluation *****`` line), skipping wrapper phases;
4. ``message``: words of the error message itself (``during evaluation``), from `MESSAGE_KINDS`.

The kinds are `PHASE_KINDS`' keys: data, initialization, training, evaluation, checkpoint, export,
monitoring. Everything here is data plus two small lookups, so a new phase name or function is one
more table entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..protocol import ExceptionInfo, FrameInfo

__all__ = [
    "FRAME_KINDS",
    "MESSAGE_KINDS",
    "PHASE_KINDS",
    "KindBasis",
    "PhaseKind",
    "during",
    "frames_kind",
    "phase_kind",
    "resolve_phase_kind",
    "stacks_kind",
]

#: Where a phase kind was learnt; see the module docstring.
KindBasis = Literal["field", "traceback", "marker", "message"]

#: Canonical phase kinds and the phase names (lower case, letters and digits only) that mean them.
PHASE_KINDS: dict[str, tuple[str, ...]] = {
    "evaluation": ("eval", "evaluation", "evaluate", "evaluating", "validation", "validate", "val",
                   "valid", "test", "testing", "benchmark", "inference", "generate", "generation",
                   "predict", "prediction", "sampling"),
    "training": ("train", "training", "sft", "pretrain", "pretraining", "finetune", "finetuning",
                 "dpo", "ppo", "grpo", "rlhf", "epoch", "fit"),
    "data": ("pretokenize", "pretokenizing", "tokenize", "tokenizing", "tokenization",
             "preprocess", "preprocessing", "data", "dataset", "dataloader", "collate"),
    "checkpoint": ("save", "saving", "checkpoint", "checkpointing"),
    "export": ("export", "exporting", "upload", "uploading", "push", "merge", "convert", "gguf",
               "onnx", "quantize"),
    "initialization": ("setup", "init", "initialize", "initialization", "load", "loading",
                       "download", "startup", "prepare"),
    "monitoring": ("monitor", "monitoring", "watchdog", "healthcheck", "heartbeat", "metrics",
                   "telemetry"),
}  # fmt: skip

#: Function names (as tracebacks print them) that run one kind of work. Frames are searched root
#: cause first and innermost first, so the most specific work on the failing path decides:
#: ``train -> _maybe_log_save_evaluate -> evaluate -> prediction_step`` is evaluation.
FRAME_KINDS: dict[str, str] = {
    **dict.fromkeys(
        ("evaluate", "evaluation_loop", "prediction_loop", "prediction_step", "eval_step",
         "evaluation_step", "validation_step", "validate", "test_step", "predict_step",
         "eval_loop", "run_eval", "run_evaluation", "evaluate_model", "compute_metrics",
         "generate", "predict"),
        "evaluation"),
    **dict.fromkeys(
        ("train", "training_step", "train_step", "_inner_training_loop", "training_loop",
         "train_epoch", "train_one_epoch", "fit", "backward", "optimizer_step",
         "compute_loss", "run_training"),
        "training"),
    **dict.fromkeys(
        ("save_checkpoint", "_save_checkpoint", "save_model", "save_pretrained", "save_state",
         "_save", "_rotate_checkpoints", "save_file"),
        "checkpoint"),
    **dict.fromkeys(
        ("tokenize", "tokenize_function", "_tokenize", "preprocess", "preprocess_function",
         "apply_chat_template", "collate", "collate_fn", "_map_single",
         "pretokenize", "prepare_dataset", "_prepare_dataset", "load_dataset"),
        "data"),
    **dict.fromkeys(
        ("push_to_hub", "export", "onnx_export", "merge_and_unload", "upload_folder",
         "upload_file"),
        "export"),
    **dict.fromkeys(
        ("from_pretrained", "_load_pretrained_model", "init_process_group", "setup",
         "load_model", "prepare_model", "snapshot_download", "hf_hub_download"),
        "initialization"),
}  # fmt: skip

#: Words in an error message that say which kind of work failed, tried in order.
MESSAGE_KINDS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b(?:during|while|in) (?:the )?(?:eval(?:uation)?|validation|testing)\b|\beval_loss\b", re.I), "evaluation"),
    (re.compile(r"\b(?:during|while|in) (?:the )?(?:train(?:ing)?|backward|optimizer step)\b", re.I), "training"),
    (re.compile(r"\b(?:during|while) (?:saving|writing) (?:the )?(?:checkpoint|model)\b", re.I), "checkpoint"),
    (re.compile(r"\b(?:during|while) (?:tokeni[sz]ing|pre-?processing|loading the dataset)\b", re.I), "data"),
)  # fmt: skip

_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@dataclass(frozen=True)
class PhaseKind:
    """A phase kind and how it is known."""

    kind: str
    basis: KindBasis
    detail: str

    def describe(self) -> str:
        """The basis as a sentence for ``confidence_basis``."""
        return {
            "field": f"phase kind {self.kind} from the record's own phase {self.detail!r}",
            "traceback": f"phase kind {self.kind} from the traceback frame {self.detail}",
            "marker": f"phase kind {self.kind} from the last work phase before it, {self.detail!r}",
            "message": f"phase kind {self.kind} from the message's words {self.detail!r}",
        }[self.basis]


def during(kind: str | None, phase: str | None) -> str:
    """Words for where a failure happened: `` during evaluation (phase 'Main')``, or ``""``."""
    where = f" during {kind}" if kind else ""
    if phase and phase.lower() != kind:
        where += f" (phase {phase!r})" if where else f" during phase {phase!r}"
    return where


def phase_kind(phase: str | None) -> str | None:
    """The canonical kind of a phase name (``EVAL`` and ``Validation`` are both ``evaluation``)."""
    words = _WORDS.findall(phase or "")
    for name in ("".join(words).lower(), *(w.lower() for w in words)):
        for kind, names in PHASE_KINDS.items():
            if name in names:
                return kind
    return None


def frames_kind(exception: ExceptionInfo | None) -> tuple[str, FrameInfo] | None:
    """The kind of work the traceback's frames were doing, and the frame that says so."""
    return stacks_kind(_frames_root_cause_first(exception))


def stacks_kind(stacks: Iterable[Sequence[FrameInfo]]) -> tuple[str, FrameInfo] | None:
    """The kind of work of the first stack (innermost frame last) that names one."""
    for frames in stacks:
        for frame in reversed(frames):
            kind = FRAME_KINDS.get(frame.function.rpartition(".")[2])
            if kind is not None:
                return kind, frame
    return None


def resolve_phase_kind(
    *,
    phase: str | None,
    phase_source: KindBasis | None = "field",
    exception: ExceptionInfo | None,
    work_phase: str | None,
    messages: Iterable[str],
) -> PhaseKind | None:
    """Decide the kind of work a failure happened in (see the module docstring for the order).

    Args:
        phase: The failure record's own phase, as the log names it.
        phase_source: How the log declared that phase: its ``[PHASE]`` field, or a marker line.
        exception: Its traceback, when it has one.
        work_phase: The last phase declared before it that names a kind of work.
        messages: Its message lines.
    """
    kind = phase_kind(phase)
    if phase is not None and kind is not None and phase_source == "field":
        return PhaseKind(kind, "field", phase)
    found = frames_kind(exception)
    if found is not None:
        kind, frame = found
        where = f"{frame.function} ({frame.file.rpartition('/')[2]}:{frame.line})"
        return PhaseKind(kind, "traceback", where)
    for declared in (phase, work_phase):
        kind = phase_kind(declared)
        if declared is not None and kind is not None:
            return PhaseKind(kind, "marker", declared)
    for message in messages:
        for pattern, kind in MESSAGE_KINDS:
            match = pattern.search(message)
            if match is not None:
                return PhaseKind(kind, "message", match.group())
    return None


def _frames_root_cause_first(exception: ExceptionInfo | None) -> list[Sequence[FrameInfo]]:
    """The frame lists of an exception chain, the innermost cause or context first."""
    chain: list[Sequence[FrameInfo]] = []
    seen = 0
    while exception is not None and seen < 64:
        chain.append(exception.frames)
        exception = exception.cause or exception.context
        seen += 1
    return chain[::-1]
