"""One progress bar for a whole training stage (Ignite's ``ProgressBar`` draws one per epoch)."""

from __future__ import annotations

from ignite.engine import Engine, Events

from contextloss_monai.utils import is_main_process

__all__ = ["StageProgressBar"]


class StageProgressBar:
    """A ``tqdm`` bar over the epochs of a training stage: epochs done of ``max_epochs`` (from the resumed epoch
    on), with the last validation value of ``metric_name``; closed when the stage completes or stops early.
    Drawn by rank 0 only, on standard error, so it stays on the terminal when the stage's log goes to a file.

    Args:
        desc: the bar's label (the stage's name).
        validator: the stage's evaluator, whose ``state.metrics[metric_name]`` is shown after each validation.
        metric_name: the validation metric to show.
    """

    def __init__(self, desc: str, validator: Engine | None = None, metric_name: str = "val_mean_dice") -> None:
        self.desc = desc
        self.validator = validator
        self.metric_name = metric_name
        self.bar = None

    def attach(self, engine: Engine) -> None:
        if not is_main_process():
            return
        engine.add_event_handler(Events.STARTED, self._open)
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._advance)
        engine.add_event_handler(Events.COMPLETED, self._close)
        engine.add_event_handler(Events.TERMINATE, self._close)

    def _open(self, engine: Engine) -> None:
        from tqdm.auto import tqdm

        self._close(engine)
        self.bar = tqdm(total=engine.state.max_epochs, initial=engine.state.epoch, desc=self.desc, unit="epoch", dynamic_ncols=True)

    def _advance(self, engine: Engine) -> None:
        if self.bar is None:
            return
        value = self.validator.state.metrics.get(self.metric_name) if self.validator is not None else None
        if isinstance(value, float):
            self.bar.set_postfix({self.metric_name: f"{value:.4f}"}, refresh=False)
        self.bar.update(engine.state.epoch - self.bar.n)

    def _close(self, engine: Engine) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
