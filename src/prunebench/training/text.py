"""Text for language modelling, without downloads: the embedded corpus and the user's own files.

`shakespeare` is the embedded corpus (Karpathy's tiny Shakespeare, 1,115,394 characters of
Shakespeare's plays, public domain, as shipped in char-rnn under MIT; gzipped in the package and
checked against its SHA-256); its test, then validation part are carved off its end by
`data.test_fraction` and `data.val_fraction`, each a contiguous stretch of the text. `text` reads
`<data.root>/train.txt`, `val.txt` and `test.txt`. The tokens are the text's UTF-8 bytes (a
vocabulary of 256, nothing to download or ship), or, with `data.tokenizer`, the ids of a Hugging
Face tokenizer saved in that directory (a model's own, read offline). Each part becomes fixed-length sequences of
`data.sequence_length` + 1 tokens, stepping by `sequence_length` (the last token of one sequence
is the first of the next: every token is predicted once); the split records each part's sequence
offsets, as the image data sets record their examples.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from prunebench.training.inputs import Tokens
from prunebench.training.parts import DataMissing, Sequences, Split, Splits

if TYPE_CHECKING:
    from prunebench.params import Data

CORPUS = Path(__file__).parent / "corpus" / "shakespeare.txt.gz"
CORPUS_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"  # of the text, unzipped
VOCAB = 256  # byte tokens
PARTS = ("train", "val", "test")


def corpus() -> bytes:
    """The embedded corpus, checked: a damaged package file is one line, not a silent other text."""
    text = gzip.decompress(CORPUS.read_bytes())
    if hashlib.sha256(text).hexdigest() != CORPUS_SHA256:
        raise DataMissing(f"{CORPUS}: its text does not match the SHA-256 it ships with; reinstall prunebench")
    return text


def read_text(path: Path) -> bytes:
    """A text file's bytes; a missing file, or one that is not UTF-8 text, is one line."""
    if not path.is_file():
        raise DataMissing(f"data.root: {path} not found: put the train.txt, val.txt and test.txt of your text there")
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataMissing(
            f"data.root: {path}: not UTF-8 text (byte {error.start} is {raw[error.start]:#04x})"
        ) from None
    if b"\0" in raw:
        raise DataMissing(f"data.root: {path}: not text (a NUL byte at {raw.index(0)})")
    return raw


@cache
def tokenizer(directory: str) -> Any:
    """The Hugging Face tokenizer saved in `directory`, read offline; a missing one is one line."""
    from prunebench.training.models.huggingface import transformers

    path = Path(directory)
    if not path.is_dir():
        raise DataMissing(f"data.tokenizer = {directory!r}: no such directory: the model's tokenizer files go there")
    try:
        return transformers().AutoTokenizer.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise DataMissing(f"data.tokenizer = {directory!r}: no tokenizer there ({first})") from None


def vocab_of(cfg: Data) -> int:
    """How many token ids the data has: 256 bytes, or the tokenizer's vocabulary."""
    return VOCAB if cfg.tokenizer is None else len(tokenizer(cfg.tokenizer))


def encode(raw: bytes, cfg: Data) -> np.ndarray:
    """A text's token ids (int64): its bytes, or what `data.tokenizer` makes of it."""
    if cfg.tokenizer is None:
        return np.frombuffer(raw, dtype=np.uint8).astype(np.int64)
    return np.asarray(tokenizer(cfg.tokenizer)(raw.decode("utf-8"))["input_ids"], dtype=np.int64)


def offsets(size: int, length: int, where: str) -> list[int]:
    """Where each sequence of `length` + 1 tokens starts in a part of `size` tokens."""
    if size < length + 1:
        raise DataMissing(
            f"{where}: {size} tokens, too short for one sequence of data.sequence_length + 1 = {length + 1}"
        )
    return list(range(0, size - length, length))


@dataclass(frozen=True)
class Text:
    """A text data source: the embedded corpus (`files` False) or the user's three files."""

    name: str
    files: bool

    def parts(self, cfg: Data) -> dict[str, bytes]:
        """The three parts' bytes."""
        if self.files:
            return {part: read_text(Path(cfg.root) / f"{part}.txt") for part in PARTS}
        text = corpus()
        test_start = round(len(text) * (1 - cfg.test_fraction))
        val_start = round(len(text) * (1 - cfg.test_fraction - cfg.val_fraction))
        return {"train": text[:val_start], "val": text[val_start:test_start], "test": text[test_start:]}

    def prepare(self, cfg: Data) -> Split:
        length = cfg.sequence_length
        vocab = vocab_of(cfg)
        split: Split = {"dataset": self.name, "vocab_size": vocab, "sequence_length": length}
        for part, raw in self.parts(cfg).items():
            where = (
                f"data.root: {Path(cfg.root) / f'{part}.txt'}"
                if self.files
                else f"data.name {self.name}: its {part} part"
            )
            tokens = encode(raw, cfg)
            split[part] = offsets(len(tokens), length, where)
            split[f"{part}_sha256"] = hashlib.sha256(tokens.tobytes()).hexdigest()  # of the token ids
        split["num_classes"] = vocab  # what data metrics report: the classes of each prediction
        return split

    def load(self, split: Split, cfg: Data, weights: dict[str, Any] | None) -> Splits:
        import torch

        length = split["sequence_length"]
        parts = {}
        for part, raw in self.parts(cfg).items():
            ids = encode(raw, cfg)
            if hashlib.sha256(ids.tobytes()).hexdigest() != split[f"{part}_sha256"]:
                raise DataMissing(
                    f"{self.name}: the {part} text or data.tokenizer changed since the data stage ran: "
                    "run dvc repro --force data"
                )
            tokens = torch.from_numpy(ids)
            starts = torch.tensor(split[part])
            parts[part] = Sequences(tokens[starts[:, None] + torch.arange(length + 1)])
        return Splits(parts["train"], parts["val"], parts["test"], tokens=Tokens(length, split["vocab_size"]))


SOURCES = (Text("shakespeare", files=False), Text("text", files=True))  # registered by `training.data`
NAMES = tuple(source.name for source in SOURCES)  # the data sets of language modelling
