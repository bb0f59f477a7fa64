"""Speech and noise file lists by split, and 16 kHz mono audio loading with clear failures.

A corpus is two lists per split (``speech[split]``, ``noise[split]``) of audio files. It comes from a
``manifest.json`` (the layout of the project's shared corpus and of the bundled sample in ``examples/audio``)::

    {"sample_rate": 16000,
     "speech": {"train": ["speech/train/a.flac", ...], "dev": [...]},
     "noise":  {"train": ["noise/train/rain.flac", ...], "dev": [...]}}

(paths relative to the manifest's folder), or from two plain folders of wav/flac files. Audio is never
resampled: a file that is not 16 kHz is rejected with its name, so a mixed-rate corpus cannot skew training.
Failures are :class:`CorpusNotFoundError` (a FileNotFoundError) and :class:`CorpusError` (a ValueError), both
:class:`tvmse.errors.TvmseError`, so the command-line tools report them without a traceback.

Generalization protocol: the noise types in :data:`HELD_OUT_NOISE_TYPES` (a noise file's type is its name
without suffix) never enter training. Every corpus drops them from its ``train`` noise list, and a corpus
whose ``dev`` noise holds them gains the split ``dev_unseen``: the dev speakers mixed with the dev recordings
of exactly those types. ``dev`` itself is unchanged (all types), so figures on it stay comparable with older
ones; ``dev_unseen`` scores conditions no training run has seen.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import TvmseError
from .framing import SAMPLE_RATE

log = logging.getLogger(__name__)


def default_corpus_manifest() -> Path:
    """The corpus used when none is named: the folder $TVMSE_CORPUS, else ``shared/data`` beside the checkout."""
    root = os.environ.get("TVMSE_CORPUS")
    folder = Path(root) if root else Path(__file__).resolve().parents[3] / "shared" / "data"
    return folder / "manifest.json"


class CorpusNotFoundError(TvmseError, FileNotFoundError):
    """A manifest, folder or audio file of the corpus does not exist."""


class CorpusError(TvmseError, ValueError):
    """The corpus exists but is unusable: bad manifest, no audio, wrong rate or channels, unknown split."""

AUDIO_SUFFIXES = (".wav", ".flac")
# 4 of the shared corpus's 16 noise types, one per kind of source: a household appliance/water (running_tap), a
# machine (exercise_bike), an outdoor urban scene (construction) and an outdoor rural one with animals (farm).
HELD_OUT_NOISE_TYPES = ("construction", "exercise_bike", "farm", "running_tap")
UNSEEN_SPLIT = "dev_unseen"


def noise_type(path: str | Path) -> str:
    """The noise type of a recording: its file name without suffix (``noise/dev/rain.flac`` → ``rain``)."""
    return Path(path).stem
KINDS = ("speech", "noise")


def load_audio(path: str | Path) -> np.ndarray:
    """Read one mono 16 kHz file as float32 in [-1, 1]; reject other rates and multichannel files by name."""
    path = Path(path)
    if not path.is_file():
        raise CorpusNotFoundError(f"audio file {path} does not exist; check the corpus manifest or folder")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise CorpusError(f"cannot decode audio file {path}: {err}; re-encode it as 16 kHz mono wav/flac") from err
    if rate != SAMPLE_RATE:
        raise CorpusError(f"{path} has sample rate {rate} Hz; tvmse needs {SAMPLE_RATE} Hz audio "
                         f"(resample it first, e.g. with sox or scipy.signal.resample_poly)")
    if audio.shape[1] != 1:
        raise CorpusError(f"{path} has {audio.shape[1]} channels; tvmse needs mono audio (downmix it first)")
    return audio[:, 0]


def _audio_files(folder: Path) -> list[Path]:
    """All wav/flac files below ``folder``, sorted so every run sees the same order."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _require_dir(folder: Path, role: str) -> None:
    if not folder.is_dir():
        raise CorpusNotFoundError(f"{role} folder {folder} does not exist; pass a folder of 16 kHz wav/flac files")


@dataclass
class Corpus:
    """Speech and noise files per split; audio is loaded on demand and noise recordings are cached."""

    root: Path
    speech: dict[str, list[Path]]
    noise: dict[str, list[Path]]
    _noise_cache: dict[Path, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.speech, self.noise = hold_out_noise_types(self.speech, self.noise)

    @classmethod
    def from_manifest(cls, path: str | Path) -> "Corpus":
        """Corpus described by ``manifest.json`` (pass the file or the folder that holds it)."""
        path = Path(path)
        if path.is_dir():
            path = path / "manifest.json"
        if not path.is_file():
            raise CorpusNotFoundError(f"corpus manifest {path} does not exist; point to a manifest.json "
                                    f"(--data, or set TVMSE_CORPUS) or use Corpus.from_folder")
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise CorpusError(f"corpus manifest {path} is not valid JSON: {err}") from err
        _check_manifest(manifest, path)
        root = path.parent
        lists = {kind: {split: [root / rel for rel in files] for split, files in manifest[kind].items()}
                 for kind in KINDS}
        _check_files_exist(lists, path)
        log.debug("corpus %s: speech %s, noise %s", path, {k: len(v) for k, v in lists["speech"].items()},
                  {k: len(v) for k, v in lists["noise"].items()})
        return cls(root=root, speech=lists["speech"], noise=lists["noise"])

    @classmethod
    def from_folder(cls, speech_dir: str | Path, noise_dir: str | Path) -> "Corpus":
        """Corpus from two folders of wav/flac files.

        If a folder has ``train``/``dev`` subfolders, those are the splits; otherwise all its files form the
        split ``"all"`` (no hidden split is invented, so nothing leaks between training and validation).
        """
        lists = {}
        for kind, folder in (("speech", Path(speech_dir)), ("noise", Path(noise_dir))):
            _require_dir(folder, kind)
            lists[kind] = _folder_splits(folder, kind)
        return cls(root=Path(speech_dir).parent, speech=lists["speech"], noise=lists["noise"])

    def speech_files(self, split: str) -> list[Path]:
        """Speech files of ``split`` (ValueError naming the known splits if it is unknown or empty)."""
        return _select(self.speech, split, "speech", self.root)

    def noise_files(self, split: str) -> list[Path]:
        """Noise recordings of ``split`` (ValueError naming the known splits if it is unknown or empty)."""
        return _select(self.noise, split, "noise", self.root)

    def load_speech(self, path: Path) -> np.ndarray:
        """One utterance, float32; not cached (utterances are short and many)."""
        return _require_sound(load_audio(path), path)

    def load_noise(self, path: Path) -> np.ndarray:
        """One noise recording, float32; cached because noise files are few, long and read for every mixture."""
        if path not in self._noise_cache:
            self._noise_cache[path] = _require_sound(load_audio(path), path)
        return self._noise_cache[path]


def hold_out_noise_types(speech: dict[str, list[Path]], noise: dict[str, list[Path]]
                         ) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Split lists under the generalization protocol (module docstring): held-out types out of ``train``,
    ``dev_unseen`` = dev speech × dev recordings of the held-out types (when dev has any)."""
    speech, noise = dict(speech), dict(noise)
    if "train" in noise:
        noise["train"] = [p for p in noise["train"] if noise_type(p) not in HELD_OUT_NOISE_TYPES]
    unseen = [p for p in noise.get("dev", []) if noise_type(p) in HELD_OUT_NOISE_TYPES]
    if unseen and "dev" in speech and UNSEEN_SPLIT not in noise:
        speech[UNSEEN_SPLIT], noise[UNSEEN_SPLIT] = list(speech["dev"]), unseen
    return speech, noise


def _require_sound(audio: np.ndarray, path: Path) -> np.ndarray:
    """Reject empty or all-zero files here, by name, rather than as an undefined SNR deep in the mixer."""
    if not np.any(audio):
        raise CorpusError(f"{path} is empty or silent; remove it from the corpus")
    return audio


def _folder_splits(folder: Path, kind: str) -> dict[str, list[Path]]:
    subdirs = {name: folder / name for name in ("train", "dev") if (folder / name).is_dir()}
    splits = {name: _audio_files(sub) for name, sub in subdirs.items()} if subdirs else {"all": _audio_files(folder)}
    if not any(splits.values()):
        raise CorpusError(f"no .wav or .flac files found in {kind} folder {folder}")
    return splits


def _check_manifest(manifest: object, path: Path) -> None:
    """Fail with the offending key if the manifest does not have the documented layout."""
    if not isinstance(manifest, dict):
        raise CorpusError(f"corpus manifest {path} must be a JSON object with 'sample_rate', 'speech', 'noise'")
    rate = manifest.get("sample_rate")
    if rate != SAMPLE_RATE:
        raise CorpusError(f"corpus manifest {path} declares sample_rate={rate!r}; tvmse needs {SAMPLE_RATE}")
    for kind in KINDS:
        splits = manifest.get(kind)
        if not isinstance(splits, dict) or not all(isinstance(v, list) for v in splits.values()):
            raise CorpusError(f"corpus manifest {path}: '{kind}' must map split names to lists of file paths")
    if not any(manifest["speech"].values()):
        raise CorpusError(f"corpus manifest {path} lists no speech files")


def _check_files_exist(lists: dict[str, dict[str, list[Path]]], manifest: Path) -> None:
    missing = [p for splits in lists.values() for files in splits.values() for p in files if not p.is_file()]
    if missing:
        shown = ", ".join(str(p) for p in missing[:5])
        raise CorpusNotFoundError(f"{len(missing)} file(s) listed in {manifest} are missing, e.g. {shown}; "
                                f"the manifest and the audio folders are out of step")


def _select(lists: dict[str, list[Path]], split: str, kind: str, root: Path) -> list[Path]:
    if split not in lists:
        raise CorpusError(f"corpus at {root} has no {kind} split {split!r}; known splits: {sorted(lists)}")
    if not lists[split]:
        raise CorpusError(f"{kind} split {split!r} of the corpus at {root} is empty; choose another split")
    return lists[split]


def bundled_sample_corpus() -> Corpus:
    """The tiny sample shipped in ``examples/audio`` (3 dev utterances, 3 dev noise snippets) for tests and demos."""
    manifest = Path(__file__).resolve().parents[2] / "examples" / "audio" / "manifest.json"
    if not manifest.is_file():
        raise CorpusNotFoundError(f"bundled sample {manifest} not found; it ships with the source tree, "
                                f"so run from a checkout (pip install -e .) rather than an installed wheel")
    return Corpus.from_manifest(manifest)
