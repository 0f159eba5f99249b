"""Progress bars for long loops. A stage shows its own; a worker process it forks shows none
(two processes drawing on one line garble it): the stage's bar over the jobs stands for them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tqdm import tqdm

shown = True  # False in forked workers: `quiet`


def bar(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    return tqdm(iterable, disable=not shown, **kwargs)


def quiet() -> None:
    """No bars in this process: a forked worker's (the stage's bar over the jobs stands for it)."""
    global shown
    shown = False


def say(text: str) -> None:
    """A line of news, kept clear of any bar."""
    tqdm.write(text)
