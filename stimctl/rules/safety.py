"""Safety rules: pure functions from a RuleContext to Violations (table: envelope.RULES)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from stimctl.rules import acupoints
from stimctl.rules.envelope import RULES, SafetyEnvelope
from stimctl.rules.profile import Channel, Profile
from stimctl.rules.quantities import OperatingPoint, PulseQuantities, operating_points
from stimctl.rules.violations import Severity, Value, Violation

__all__ = ["ALL_RULES", "PATIENT_FLAGS", "PREGNANCY_POINTS", "RuleContext", "run_rules"]

PATIENT_FLAGS: tuple[str, ...] = ("pregnant", "implanted-device", "epilepsy", "anticoagulant")
#: Points usually avoided in pregnancy (clinical texts), besides abdominal and sacral points.
PREGNANCY_POINTS = frozenset({"LI4", "SP6", "BL60", "BL67", "GB21"})
PREGNANCY_REGIONS = frozenset({"abdomen", "sacral"})
HEAD_REGIONS = frozenset({"head", "face", "eye"})
THORACIC_REGIONS = frozenset({"chest", "upper_limb", "upper_back"})
ENDS = ("anode", "cathode")

Sites = tuple[acupoints.Site | None, acupoints.Site | None]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may look at, computed once per validation."""

    profile: Profile
    envelope: SafetyEnvelope
    patient: frozenset[str]
    #: Per channel: (anode site, cathode site); None where the text is not a valid site.
    sites: tuple[Sites, ...]
    points: tuple[OperatingPoint, ...]

    @classmethod
    def build(
        cls, profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
    ) -> RuleContext:
        sites = tuple((_site(c.anode), _site(c.cathode)) for c in profile.channels)
        return cls(profile, envelope, frozenset(patient), sites, operating_points(profile))


def _site(text: str) -> acupoints.Site | None:
    try:
        return acupoints.parse_site(text)
    except acupoints.UnknownPoint:
        return None


def _v(
    code: str,
    loc: str,
    message: str,
    limit: Value = None,
    actual: Value = None,
    severity: Severity | None = None,
) -> Violation:
    rule = RULES[code]
    return Violation(code, severity or rule.severity, loc, message, limit, actual, rule.source)


def _exceeds(actual: float, limit: float) -> bool:
    """True unless actual <= limit (so nan counts as exceeding)."""
    return not actual <= limit


def _outside(actual: float, lo: float, hi: float) -> bool:
    return not lo <= actual <= hi


Rule = Callable[[RuleContext], Iterator[Violation]]


def sites_rule(ctx: RuleContext) -> Iterator[Violation]:
    """point-unknown, point-alias, and anode = cathode (schema)."""
    for i, (channel, sites) in enumerate(zip(ctx.profile.channels, ctx.sites, strict=True)):
        for end, site in zip(ENDS, sites, strict=True):
            loc, text = f"channels[{i}].{end}", getattr(channel, end)
            if site is None:
                try:
                    acupoints.parse_site(text)
                    reason = "not a site"
                except acupoints.UnknownPoint as error:
                    reason = str(error)
                yield _v("point-unknown", loc, reason, None, text)
            elif site.normalised:
                yield _v("point-alias", loc, f"{text!r} read as {site.label!r}", site.label, text)
        anode, cathode = sites
        if anode is not None and cathode is not None and anode.label == cathode.label:
            yield Violation(
                "schema",
                "error",
                f"channels[{i}].cathode",
                f"anode and cathode are the same site ({anode.label})",
                None,
                cathode.label,
                RULES["schema"].source,
            )


def channel_rules(ctx: RuleContext) -> Iterator[Violation]:
    """channel-count-max and amplitude-max."""
    env, channels = ctx.envelope, ctx.profile.channels
    if len(channels) > env.max_channels:
        yield _v(
            "channel-count-max",
            "channels",
            f"{len(channels)} channels > {env.max_channels} allowed",
            env.max_channels,
            len(channels),
        )
    for i, channel in enumerate(channels):
        if _exceeds(channel.amplitude_ma, env.max_amplitude_ma):
            yield _v(
                "amplitude-max",
                f"channels[{i}].amplitude_ma",
                f"amplitude {channel.amplitude_ma:g} mA > {env.max_amplitude_ma:g} mA peak",
                env.max_amplitude_ma,
                channel.amplitude_ma,
            )


def _elements(value: float | tuple[float, ...], loc: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, tuple):
        for k, item in enumerate(value):
            yield f"{loc}[{k}]", item
    else:
        yield loc, value


def timing_rules(ctx: RuleContext) -> Iterator[Violation]:
    """pulse-width-range and frequency-range (including: the pulse must fit its period)."""
    env = ctx.envelope
    pw_lo, pw_hi = env.pulse_width_us
    f_lo, f_hi = env.frequency_hz
    for j, phase in enumerate(ctx.profile.phases):
        for loc, pw in _elements(phase.pulse_width_us, f"phases[{j}].pulse_width_us"):
            if _outside(pw, pw_lo, pw_hi):
                yield _v(
                    "pulse-width-range",
                    loc,
                    f"pulse width {pw:g} us outside {pw_lo:g}..{pw_hi:g} us",
                    f"{pw_lo:g}..{pw_hi:g}",
                    pw,
                )
        for loc, f in _elements(phase.frequency_hz, f"phases[{j}].frequency_hz"):
            if _outside(f, f_lo, f_hi):
                yield _v(
                    "frequency-range",
                    loc,
                    f"frequency {f:g} Hz outside {f_lo:g}..{f_hi:g} Hz",
                    f"{f_lo:g}..{f_hi:g}",
                    f,
                )
    for op in ctx.points:
        q = op.quantities
        fit = 1e6 / q.min_period_us
        if op.channel == 0 and _exceeds(q.frequency_hz, fit) and f_lo <= q.frequency_hz <= f_hi:
            phase = ctx.profile.phases[op.phase]
            loc = f"phases[{op.phase}].frequency_hz"
            if isinstance(phase.frequency_hz, tuple):
                loc += f"[{op.variant}]"
            yield _v(
                "frequency-range",
                loc,
                f"a {q.active_time_us:g} us pulse does not fit a {q.frequency_hz:g} Hz"
                f" period (max {fit:.4g} Hz)",
                fit,
                q.frequency_hz,
            )


def _worst(
    ctx: RuleContext, key: Callable[[PulseQuantities], float]
) -> Iterator[tuple[str, Channel, float]]:
    """Per (phase, channel): the largest value of ``key`` over the frequency variants."""
    best: dict[tuple[int, int], float] = {}
    for op in ctx.points:
        value = key(op.quantities)
        old = best.get((op.phase, op.channel))
        if old is None or not value <= old:
            best[(op.phase, op.channel)] = value
    for (p, c), value in best.items():
        yield f"phases[{p}].channels[{c}]", ctx.profile.channels[c], value


def _quantity_rule(
    code: str,
    key: Callable[[PulseQuantities], float],
    what: str,
    unit: str,
    at_limit: bool = False,
) -> Rule:
    def rule(ctx: RuleContext) -> Iterator[Violation]:
        field = RULES[code].field
        assert field is not None
        limit = getattr(ctx.envelope, field)
        for loc, channel, value in _worst(ctx, key):
            if _exceeds(value, limit) or (at_limit and value == limit):
                op, u = (">=" if at_limit else ">"), (f" {unit}" if unit else "")
                yield _v(
                    code,
                    loc,
                    f"channel {channel.id}: {what} {value:.4g}{u} {op} {limit:g}{u}",
                    limit,
                    value,
                )

    rule.__name__ = rule.__qualname__ = code.replace("-", "_")
    rule.__doc__ = f"{code}: {what} per (phase, channel), worst frequency variant."
    return rule


phase_charge_rule = _quantity_rule(
    "phase-charge-max", lambda q: q.phase_charge_uc, "phase charge", "uC"
)
rms_current_rule = _quantity_rule("rms-current-max", lambda q: q.rms_ma, "r.m.s. current", "mA")
pulse_energy_rule = _quantity_rule(
    "pulse-energy-max", lambda q: q.pulse_energy_mj, "energy per pulse into 500 ohm", "mJ"
)
power_density_rule = _quantity_rule(
    "power-density-max",
    lambda q: q.power_density_w_cm2,
    "average power density",
    "W/cm2",
    at_limit=True,
)
shannon_rule = _quantity_rule("charge-density-shannon", lambda q: q.shannon_k, "Shannon k", "")
current_density_rule = _quantity_rule(
    "current-density-iec", lambda q: q.current_density_ma_cm2, "r.m.s. current density", "mA/cm2"
)


def charge_balance_rule(ctx: RuleContext) -> Iterator[Violation]:
    """charge-imbalance: monophasic, or a non-zero net charge per pulse."""
    worst = max((abs(op.quantities.net_charge_uc) for op in ctx.points), default=0.0)
    tolerance = 1e-9 * max((op.quantities.phase_charge_uc for op in ctx.points), default=0.0)
    shape = ctx.profile.waveform.shape
    if shape == "monophasic" or _exceeds(worst, tolerance):
        yield _v(
            "charge-imbalance",
            "waveform.shape",
            f"{shape} leaves {worst:.4g} uC net charge per pulse; use a biphasic shape",
            0.0,
            worst,
        )


def session_rules(ctx: RuleContext) -> Iterator[Violation]:
    """duration-max, ramp-required and ramp-rate-max."""
    env, phases = ctx.envelope, ctx.profile.phases
    total = ctx.profile.duration_s
    if _exceeds(total, env.max_session_s):
        yield _v(
            "duration-max",
            "phases",
            f"session {total:g} s > {env.max_session_s:g} s",
            env.max_session_s,
            total,
        )
    top = max(c.amplitude_ma for c in ctx.profile.channels)
    top_id = next(c.id for c in ctx.profile.channels if c.amplitude_ma == top)
    for j, phase in enumerate(phases):
        previous = phases[j - 1] if j else None
        from_zero = (
            previous is None
            or previous.ramp_down_s > 0
            or previous.mode == "intermittent"
            or phase.mode == "intermittent"
        )
        if from_zero and phase.ramp_up_s <= 0:
            why = (
                "the first phase"
                if previous is None
                else "each intermittent on-window"
                if phase.mode == "intermittent"
                else "a phase after one that ended at zero"
            )
            yield _v(
                "ramp-required",
                f"phases[{j}].ramp_up_s",
                f"{why} starts from zero: ramp_up_s must be > 0",
                0.0,
                phase.ramp_up_s,
            )
        for name in ("ramp_up_s", "ramp_down_s"):
            seconds = getattr(phase, name)
            if seconds > 0:
                rate = top / seconds
                if _exceeds(rate, env.max_ramp_rate_ma_per_s):
                    yield _v(
                        "ramp-rate-max",
                        f"phases[{j}].{name}",
                        f"channel {top_id}: {top:g} mA over {seconds:g} s is {rate:.4g} "
                        f"mA/s > {env.max_ramp_rate_ma_per_s:g} mA/s",
                        env.max_ramp_rate_ma_per_s,
                        rate,
                    )


def path_rules(ctx: RuleContext) -> Iterator[Violation]:
    """Current paths: contralateral, transthoracic, transcerebral; anterior neck and eye sites."""
    for i, (anode, cathode) in enumerate(ctx.sites):
        for end, site in zip(ENDS, (anode, cathode), strict=True):
            if site is None:
                continue
            loc = f"channels[{i}].{end}"
            if site.point.region == "anterior_neck":
                yield _v(
                    "site-anterior-neck",
                    loc,
                    f"{site.label} is on the front of the neck (carotid sinus)",
                    None,
                    site.label,
                )
            if site.point.region == "eye":
                yield _v("site-eye", loc, f"{site.label} is in the eye region", None, site.label)
        if anode is None or cathode is None:
            continue
        regions = {anode.point.region, cathode.point.region}
        pair = f"{anode.label} -> {cathode.label}"
        contralateral = None not in (anode.side, cathode.side) and anode.side != cathode.side
        if contralateral:
            lower = regions == {"lower_limb"}
            yield _v(
                "path-contralateral",
                f"channels[{i}]",
                f"{pair} crosses the body midline" + (" (both on lower limbs)" if lower else ""),
                None,
                pair,
                "warning" if lower else None,
            )
        if regions == {"chest", "upper_back"} or (contralateral and regions & THORACIC_REGIONS):
            yield _v(
                "path-transthoracic",
                f"channels[{i}]",
                f"{pair} sends current across the thorax",
                None,
                pair,
            )
        if contralateral and regions <= HEAD_REGIONS:
            yield _v(
                "path-transcerebral",
                f"channels[{i}]",
                f"{pair} sends current across the head",
                None,
                pair,
            )


def patient_rules(ctx: RuleContext) -> Iterator[Violation]:
    """patient-pregnancy-point, -implanted-device, -epilepsy, -anticoagulant."""
    if "implanted-device" in ctx.patient:
        yield _v(
            "patient-implanted-device",
            "patient",
            "patient has an implanted device (pacemaker, ICD, stimulator): do not stimulate",
            None,
            "implanted-device",
        )
    if "epilepsy" in ctx.patient:
        yield _v(
            "patient-epilepsy",
            "patient",
            "patient has epilepsy: stimulate only under supervision",
            None,
            "epilepsy",
        )
    if "anticoagulant" in ctx.patient:
        yield _v(
            "patient-anticoagulant",
            "patient",
            "patient takes anticoagulants: bleeding risk at the needle sites; use modified"
            " needling (fewer, shallower needles; firm pressure after removal)",
            None,
            "anticoagulant",
        )
    if "pregnant" in ctx.patient:
        for i, sites in enumerate(ctx.sites):
            for end, site in zip(ENDS, sites, strict=True):
                if site is not None and (
                    site.point.code in PREGNANCY_POINTS or site.point.region in PREGNANCY_REGIONS
                ):
                    yield _v(
                        "patient-pregnancy-point",
                        f"channels[{i}].{end}",
                        f"{site.label} ({site.point.region}) is avoided in pregnancy",
                        None,
                        site.label,
                    )


ALL_RULES: tuple[Rule, ...] = (
    sites_rule,
    channel_rules,
    timing_rules,
    phase_charge_rule,
    charge_balance_rule,
    rms_current_rule,
    pulse_energy_rule,
    power_density_rule,
    session_rules,
    shannon_rule,
    current_density_rule,
    path_rules,
    patient_rules,
)


def run_rules(
    profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
) -> list[Violation]:
    """Every rule over one profile, in table order."""
    ctx = RuleContext.build(profile, envelope, patient)
    return [v for rule in ALL_RULES for v in rule(ctx)]
