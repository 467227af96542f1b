"""A stream's plan: a settings change validated and resolved once, then applied by version.

Every way of changing what a stream does goes through ``make_plan``: ``PATCH /api/streams/{stream}`` and the
WebSocket ``settings`` message (``streamer.api.routes.apply_settings``), ``stageswap process`` and ``serve``'s
first settings (``streamer.commands``), and a stream that starts again with the settings it had. A change is
checked once, here, in this order:

1. the patch is validated into new settings (``engines.settings.apply_patch``, once);
2. what the new settings name is resolved against what is there: the enrolled identity, the swap model (a
   registered one that can run: an inswapper-style model needs the identity's embedding), the HDRI image;
3. who the swap puts on the actor (``streamer.governance.likeness``, and the identities the target rules
   put on faces) and, for a likeness that is new, its consent — read once and checked once
   (``check_swap_allowed``: expired or pending consent refuses a new swap). A swap that goes on is not cut
   off mid-take when its consent expires;
4. the audit events the change makes (``swap.stopped`` / ``swap.started``).

The result is an immutable ``Plan`` with a version. A stream takes a new plan only with a compare-and-set on
the version it was planned from (``PlanSlot.swap``); a change planned from a version that is no longer
current is planned again from the new one, so two concurrent changes never interleave into a state nobody
checked, and each applied change makes its audit events exactly once. The worker thread reads the current
plan's settings for every frame and nothing else; the stats show the consent the plan carries, its status
worked out from the record in memory (no disk read on the event loop).

Must not import ``streamer.api``, ``streamer.live`` or ``streamer.commands``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from engines.errors import InputError, StageswapError
from engines.light.hdri import hdri_path
from engines.settings import ProcessSettings, apply_patch
from streamer.governance.audit import swap_events, target_events
from streamer.governance.consent import ConsentRecord, ConsentStatus, check_swap_allowed, consent_summary
from streamer.governance.likeness import Likeness, ModelLookup, likeness_consent, swapped_in

AuditEvent = tuple[str, dict[str, Any]]
"""An audit log entry to append: (event, data)."""


@dataclass(frozen=True)
class Plan:
    """What a stream runs: its settings, checked, with who is swapped in and the consent on record."""

    settings: ProcessSettings = field(default_factory=ProcessSettings)
    version: int = 0
    likeness: Likeness | None = None
    consent: ConsentRecord | None = None
    """The likeness's consent record as read when it was planned (None: unverified, or nothing swapped in)."""
    consent_error: str | None = None
    """Why the record could not be read (a damaged file, a model no longer registered): shown as unverified."""
    refused: str | None = None
    """Why the swap does not run: its consent did not hold when the stream started again. The settings stay
    as the operator left them; the worker runs them without the swap, and the next change checks again."""
    run_settings: ProcessSettings = field(init=False, compare=False)
    """What the worker runs: ``settings``, with the swap off when ``refused``."""

    def __post_init__(self) -> None:
        run = dataclasses.replace(self.settings, swap=False) if self.refused else self.settings
        object.__setattr__(self, "run_settings", run)

    @property
    def swapping(self) -> Likeness | None:
        """The likeness that is swapped in now (None when nothing is, or its swap was refused)."""
        return None if self.refused else self.likeness

    def consent_view(self, today: dt.date | None = None) -> dict[str, Any] | None:
        """The stream JSON's ``consent`` (``{"identity" | "model": NAME, "status": ...}``; None: nothing
        swapped in), as of ``today`` — from the record in memory."""
        if self.likeness is None:
            return None
        if self.consent_error is not None:
            summary = {"status": ConsentStatus.UNVERIFIED.value, "verified": False, "error": self.consent_error}
        else:
            summary = consent_summary(self.consent, today)
        view = {**self.likeness.fields(), **summary}
        if self.refused:
            view["refused"] = self.refused
        return view

    def restarted(self, today: dt.date | None = None) -> Plan:
        """The plan a stream starts again with: the same, its consent checked again as of ``today`` from the
        record in memory (the service then reads it again from disk, off the event loop)."""
        refused = self.consent_error
        if self.likeness is not None and refused is None:
            try:
                check_swap_allowed(self.likeness.name, self.consent, today, subject=self.likeness.subject)
            except InputError as exc:
                refused = str(exc)
        return dataclasses.replace(self, version=self.version + 1, refused=refused if self.likeness else None)

    def with_consent(self, likeness: Likeness, record: ConsentRecord | None) -> Plan:
        """The same plan with a renewed record for ``likeness`` (a new version); itself if it does not show it."""
        if self.likeness != likeness:
            return self
        return dataclasses.replace(self, version=self.version + 1, consent=record, consent_error=None)


class Resolver(Protocol):
    """What planning reads (blocking: stores on disk; call ``make_plan`` off the event loop)."""

    identities_root: Path
    """Where enrolled identities and their consent records are (``data_dir/identities``)."""
    hdri_dir: Path | None
    models: ModelLookup | None
    """The registered swap models (``engines.swap.user_models.UserModelStore``), if any."""

    def identity_names(self) -> list[str] | None:
        """The enrolled identities; None when this setup has no identity store to ask."""
        ...

    def check_swap_model(self, settings: ProcessSettings) -> None:
        """Raise InputError when ``settings.swap_model`` cannot run with ``settings.identity``."""
        ...

    def check_performers(self, names: list[str]) -> None:
        """Raise InputError naming a performer (``settings.targets``) that is not enrolled or is damaged."""
        ...


@dataclass(frozen=True)
class Planned:
    plan: Plan
    events: tuple[AuditEvent, ...]
    """The audit events the change makes (record them once the plan is applied)."""


def make_plan(
    current: Plan,
    patch: Mapping[str, Any] | Any,
    resolver: Resolver,
    stream: str = "",
    today: dt.date | None = None,
    starting: bool = False,
) -> Planned:
    """The plan that ``patch`` makes of ``current`` (see the module docstring); raises InputError (a
    ConsentError for consent that refuses a new swap) and changes nothing when the change is refused.

    ``starting``: the stream starts (again) with ``current`` — its consent is read and checked again, and
    consent that does not hold marks the plan ``refused`` instead of raising (nothing to refuse: the camera is
    already there); the names were checked when they were set."""
    settings = apply_patch(current.settings, patch)
    if not starting:
        _resolve_names(current.settings, settings, resolver)
    likeness = swapped_in(settings, resolver.models)
    running = current.swapping
    record, error, refused = current.consent, current.consent_error, current.refused
    if likeness is None:
        record, error, refused = None, None, None
    elif starting or likeness != running:  # a new swap: its consent is read and checked, once
        record, error, refused = None, None, None
        try:
            record = likeness_consent(likeness, resolver.identities_root, resolver.models)
            check_swap_allowed(likeness.name, record, today, subject=likeness.subject)
        except (StageswapError, ValueError) as exc:
            if not starting:
                raise
            refused = str(exc)
            if record is None:
                error = str(exc)
    if refused is None:
        try:
            _check_rule_identities(current, settings, resolver, today, starting, checked=likeness)
        except (StageswapError, ValueError) as exc:
            if not starting:
                raise
            refused = str(exc)
    plan = Plan(settings, current.version + 1, likeness, record, error, refused)
    events = swap_events(stream, running, plan.swapping)
    events += target_events(stream, current.run_settings, plan.run_settings, (running, plan.swapping))
    return Planned(plan, tuple(events))


def _check_rule_identities(
    current: Plan,
    settings: ProcessSettings,
    resolver: Resolver,
    today: dt.date | None,
    starting: bool,
    checked: Likeness | None,
) -> None:
    """The identities the target rules (``settings.targets``) put on faces are swapped in as the stream's
    identity is: each one new to the stream has its consent read and checked once (ConsentError), here and
    not per frame. The stream JSON's ``consent`` names the stream's likeness; the rules' are checked, not
    shown."""
    if not settings.swap:
        return
    running = current.run_settings
    before = set() if starting or not running.swap else set(running.target_identities)
    for name in settings.target_identities:
        if name in before or checked == Likeness("identity", name):
            continue
        record = likeness_consent(Likeness("identity", name), resolver.identities_root, resolver.models)
        check_swap_allowed(name, record, today)


def _resolve_names(before: ProcessSettings, after: ProcessSettings, resolver: Resolver) -> None:
    """Refuse names that would only fail frame by frame later: an identity that is not enrolled, a swap
    model that cannot run, an HDRI that is not there. Only what the change touches is looked up."""
    # Names the change brings in; all of them when it turns the swap on (with the swap off a name is not
    # looked up when it is set, and may have been removed since).
    turned_on = after.swap and not before.swap
    named = (
        {after.identity} if after.identity is not None and (turned_on or after.identity != before.identity) else set()
    )
    named |= set(after.target_identities) - (set() if turned_on else set(before.target_identities))
    if after.swap and named:
        known = resolver.identity_names()
        for name in sorted(named - set(known if known is not None else named)):
            enrolled = ", ".join(known or ()) or "none"
            raise InputError(
                f"unknown identity {name!r} (enrolled: {enrolled}); enroll it first "
                "(POST /api/identities, or stageswap identities add)"
            )
    performers = {r.performer for r in after.targets if r.performer is not None}
    performers -= {r.performer for r in before.targets if r.performer is not None}
    if performers:
        resolver.check_performers(sorted(performers))
    if after.swap and (after.swap_model, after.identity) != (before.swap_model, before.identity):
        resolver.check_swap_model(after)
    target = after.relight_target
    if target.hdri is not None and target.hdri != before.relight_target.hdri:
        hdri_path(target.hdri, resolver.hdri_dir)


class PlanConflict(Exception):
    """The plan was made from a version that is no longer current: plan the change again."""


class PlanSlot:
    """A stream's current plan, shared with its worker thread: read without a lock (one reference), replaced
    only by a compare-and-set on the version it was planned from.

    The worker holds this, not the stream: nothing in it refers back to the stream, so an ended stream is
    freed as soon as the registry and its sessions let go of it (found by the soak test)."""

    __slots__ = ("_lock", "value")

    def __init__(self, plan: Plan) -> None:
        self.value = plan
        self._lock = threading.Lock()

    def swap(self, plan: Plan, expected_version: int) -> None:
        """Make ``plan`` current if the current one is still ``expected_version``; PlanConflict otherwise."""
        with self._lock:
            if self.value.version != expected_version:
                raise PlanConflict(f"plan version {self.value.version}, expected {expected_version}")
            self.value = plan


def check_swap_model(settings: ProcessSettings, identities: Any, models: Any) -> None:
    """Raise InputError when ``settings`` name a swap model that could not run: not registered (naming every
    swap model there is, the built-in mesh first: the operator picks from that list), a recogniser, its file
    missing or changed, or an inswapper-style model swapping to an identity with no embedding — said when it
    is set, not as frames passed through unprocessed (blocking: file reads). An inswapper-style model with no
    identity yet is taken: it swaps nothing until one is chosen."""
    from engines.swap.user_models import MESH, SWAP_KINDS

    if settings.swap_model == MESH or not settings.swap:
        return
    if models is None:
        raise InputError(f"swap model {settings.swap_model!r} selected but there is no model store")
    if settings.swap_model not in models.names():  # one of another kind is refused by get, naming its kind
        choices = ", ".join([MESH, *models.names(SWAP_KINDS)])
        raise InputError(
            f"unknown swap model {settings.swap_model!r}: the swap models are {choices} "
            "(a model is added on the server: stageswap models add FILE)"
        )
    model = models.get(settings.swap_model, SWAP_KINDS)
    models.path(model)  # the file is there and matches its sha256
    if model.kind == "inswapper" and identities is not None and settings.identity is not None:
        from engines.identity.recognition import identity_embedding

        identity = identities.load(settings.identity)
        identity_embedding(models, identities.root, settings.identity, identity.info.photo_sha256)


@dataclass
class StoreResolver:
    """A ``Resolver`` over the stores of one data directory (the live service and ``stageswap process``)."""

    identities_root: Path
    hdri_dir: Path | None
    identities: Any = None
    """``engines.identity.store.IdentityStore`` (None: none in this setup)."""
    models: Any = None
    """``engines.swap.user_models.UserModelStore`` (None: none in this setup)."""
    performers: Any = None
    """``engines.identity.performers.PerformerStore`` (None: none in this setup: rules naming one are refused)."""

    def identity_names(self) -> list[str] | None:
        if self.identities is None:
            return None
        try:
            return [info.name for info in self.identities.list()]
        except InputError:
            return None  # no identity store in this build: the processor reports unknown names itself

    def check_swap_model(self, settings: ProcessSettings) -> None:
        check_swap_model(settings, self.identities, self.models)

    def check_performers(self, names: list[str]) -> None:
        known = self.performers.names() if self.performers is not None else []
        for name in names:
            if name not in known:
                raise InputError(
                    f"unknown performer {name!r} in targets (enrolled: {', '.join(known) or 'none'}); enroll one "
                    f"with `stageswap performers add {name} CLIP_OR_PHOTO...`"
                )
            self.performers.load(name)  # a damaged one is said now
