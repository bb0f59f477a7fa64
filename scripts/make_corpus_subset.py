"""Copy a training subset of a corpus (N utterances per speaker, the training noise types) with its manifest.

    .venv/bin/python scripts/make_corpus_subset.py OUT_DIR [--data ../shared/data/manifest.json] [--per-speaker 5]

Why: a machine that receives the corpus by copy (a rented GPU) may take less than the whole corpus. The subset
holds ``--per-speaker`` utterances of every training speaker (chosen with ``random.Random(seed)``; the speaker is
the file name up to its first ``_``) and the training recordings of every noise type that is not held out
(:data:`tvmse.data.HELD_OUT_NOISE_TYPES`); it has only a ``train`` split. The bundled dense model was trained on
``--per-speaker 5 --seed 0`` (525 utterances, 12 noise types, 52 MB).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tvmse.data import Corpus, default_corpus_manifest  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", help="folder to create (must not exist)")
    p.add_argument("--data", default=str(default_corpus_manifest()))
    p.add_argument("--per-speaker", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    out = Path(args.out)
    if out.exists():
        sys.exit(f"tvmse: error: {out} exists; choose a new folder")
    corpus = Corpus.from_manifest(args.data)
    by_speaker = defaultdict(list)
    for path in corpus.speech_files("train"):
        by_speaker[path.name.split("_")[0]].append(path)
    rng = random.Random(args.seed)
    speech = []
    for speaker in sorted(by_speaker):
        files = sorted(by_speaker[speaker])
        speech += sorted(rng.sample(files, min(args.per_speaker, len(files))))
    noise = corpus.noise_files("train")  # held-out types are already gone
    lists = {"speech": [], "noise": []}
    for kind, files in (("speech", speech), ("noise", noise)):
        for path in files:
            rel = path.relative_to(corpus.root)
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out / rel)
            lists[kind].append(rel.as_posix())
    manifest = {"sample_rate": 16000, "speech": {"train": lists["speech"]}, "noise": {"train": lists["noise"]}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"{out}: {len(speech)} utterances of {len(by_speaker)} speakers, {len(noise)} noise recordings, "
          f"{size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
