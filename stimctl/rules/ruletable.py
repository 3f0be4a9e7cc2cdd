"""The rule table: every rule's code, severity, the envelope field holding its limit, its unit
and its source (RULES), with the sources the rule and policy rows cite."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["POLICY", "RULES", "Rule"]


IEC = "IEC 60601-2-10"
FDA = "FDA powered muscle stimulator 510(k) guidance (1999)"
SHANNON = "Shannon 1992 (k = log10 Q + log10 Q/A)"
WHO = "WHO Standard Acupuncture Point Locations (2008)"
CLINICAL = "clinical practice (Han 2-10 mA, 0.3-0.6 ms, 2/100 Hz; EA sessions 20-30 min)"
POLICY = "stimctl policy"
ANTICOAGULANT = (
    "McCulloch et al., Acupuncture safety in patients receiving anticoagulants, Perm J 2015;"
    "19(1):68-73; WHO Guidelines on basic training and safety in acupuncture (1999), precautions"
)
PROTOCOL = "docs/PROTOCOL.md (BLOCK: frequency in 0.1 Hz, pulse width in 1 us, u16; 1 ms tick)"
#: Per-electrode rules also judge each shared site: every channel's pulses start together
#: (docs/PROTOCOL.md, "Output and timing"), so the channels on one needle add up there.
SITE_SUM = "per electrode site: the coincident sum of every channel using it"
SEED = (
    "seed protocol (acupuncture for migraine: session table; no improvement by session 6:"
    " re-evaluate the diagnosis rather than escalating)"
)
IHS_CHRONIC = (
    "Tassorelli C et al. IHS guidelines for controlled trials of preventive treatment of chronic"
    " migraine in adults. Cephalalgia 2018;38(5):815-832 (30 % reduction of headache days)"
)
IHS_EPISODIC = (
    "Diener HC et al. IHS guidelines for controlled trials of preventive treatment of migraine"
    " attacks in episodic migraine in adults. Cephalalgia 2020;40(10):1026-1044 (50 % responder)"
)
ICHD3_MOH = "ICHD-3 (Cephalalgia 2018;38(1):1-211), 8.2 Medication-overuse headache"
COURSE_FORMAT = "docs/COURSE.md (stimctl.course/1)"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: stable code, severity, the envelope field holding its limit, unit, source."""

    code: str
    severity: Literal["error", "warning", "info"]
    field: str | None
    unit: str
    source: str
    summary: str


_RULES = (
    Rule(
        "schema",
        "error",
        None,
        "",
        "docs/PROFILES.md (stimctl.profile/1)",
        "structure/type errors, unknown keys, wrong schema string",
    ),
    Rule(
        "point-unknown",
        "error",
        None,
        "",
        WHO,
        "not a WHO code or known alias; bilateral point without side; midline with side",
    ),
    Rule("point-alias", "warning", None, "", WHO, "alias or spelling normalised (LV3 -> LR3)"),
    Rule(
        "channel-count-max",
        "error",
        "max_channels",
        "channels",
        f"{POLICY}; device handshake",
        "more channels than the envelope (or the device) allows, or a channel id above that",
    ),
    Rule(
        "amplitude-max",
        "error",
        "max_amplitude_ma",
        "mA",
        f"{CLINICAL}; {IEC} (outputs over 10 mA must be declared)",
        f"peak amplitude above max, per channel and {SITE_SUM}",
    ),
    Rule(
        "channel-same-pair",
        "error",
        None,
        "",
        f"{POLICY}: one electrode pair, one channel ({IEC}: current density per electrode)",
        "two channels on the same pair of sites (either way round)",
    ),
    Rule(
        "pulse-width-range",
        "error",
        "pulse_width_us",
        "us",
        CLINICAL,
        "pulse width outside the range",
    ),
    Rule(
        "frequency-range",
        "error",
        "frequency_hz",
        "Hz",
        CLINICAL,
        "frequency outside the range, or too high for the pulse to fit in its period",
    ),
    Rule(
        "device-resolution",
        "error",
        None,
        "",
        PROTOCOL,
        "a value the device cannot be sent as written: pulse width not a whole us, frequency not"
        " a multiple of 0.1 Hz, above the u16 fields, or a time (duration, switch, on, off)"
        " under 1 ms",
    ),
    Rule(
        "phase-charge-max",
        "error",
        "max_phase_charge_uc",
        "uC",
        f"{POLICY} (Han 2-10 mA x 0.3-0.6 ms); {FDA}: max phase charge",
        f"amplitude x pulse width above max per phase, per channel and {SITE_SUM}",
    ),
    Rule(
        "charge-imbalance",
        "error",
        None,
        "uC",
        f"{FDA}: net charge per pulse; {SHANNON}",
        "monophasic, or net charge per pulse not zero",
    ),
    Rule(
        "rms-current-max",
        "error",
        "max_rms_ma",
        "mA",
        IEC,
        f"r.m.s. current above max, per channel and {SITE_SUM}",
    ),
    Rule(
        "pulse-energy-max",
        "error",
        "max_pulse_energy_mj",
        "mJ",
        IEC,
        "energy per pulse into 500 ohm above max",
    ),
    Rule(
        "power-density-max",
        "error",
        "max_power_density_w_cm2",
        "W/cm2",
        FDA,
        f"average power into 500 ohm per needle area at or above max, per channel and {SITE_SUM}",
    ),
    Rule(
        "duration-max",
        "error",
        "max_session_s",
        "s",
        f"{CLINICAL}; {POLICY} (2x margin)",
        "total session longer than max",
    ),
    Rule(
        "ramp-required",
        "error",
        None,
        "s",
        f"{POLICY}: output always ramps up from zero",
        "a phase starting from zero without a ramp up",
    ),
    Rule(
        "ramp-rate-max", "error", "max_ramp_rate_ma_per_s", "mA/s", POLICY, "ramp steeper than max"
    ),
    Rule(
        "charge-density-shannon",
        "warning",
        "max_shannon_k",
        "k",
        SHANNON,
        "Shannon k above max for the needle area (extrapolated to needles), per channel and"
        f" {SITE_SUM}",
    ),
    Rule(
        "current-density-iec",
        "warning",
        "max_current_density_ma_cm2",
        "mA/cm2",
        IEC,
        "r.m.s. current density above the level the instructions must flag, per channel and"
        f" {SITE_SUM}",
    ),
    Rule(
        "path-contralateral",
        "error",
        None,
        "",
        IEC,
        "electrodes of one channel on opposite sides (warning when both on the legs or both on"
        " the lower trunk)",
    ),
    Rule(
        "path-transthoracic",
        "error",
        None,
        "",
        IEC,
        "current path through the thorax (body segments: docs/SAFETY.md, stimctl/rules/body.py)",
    ),
    Rule(
        "path-transcerebral",
        "error",
        None,
        "",
        IEC,
        "electrodes on opposite sides of the head/face",
    ),
    Rule(
        "site-anterior-neck",
        "error",
        None,
        "",
        f"{IEC} (carotid sinus)",
        "electrode at an anterior-neck point",
    ),
    Rule("site-eye", "error", None, "", f"{IEC} (eyes)", "electrode at a point in the orbit"),
    Rule(
        "site-periorbital",
        "warning",
        None,
        "",
        f"{IEC} (eyes); {WHO}: BL2, TE23 at the eyebrow, GB1 at the lateral orbital margin,"
        " ST2 at the infraorbital foramen",
        "electrode around the orbit (eyebrow, orbital margin): keep needle and current off the eye",
    ),
    Rule(
        "site-mouth",
        "error",
        None,
        "",
        f"{IEC} (mouth); {WHO}: GV28 inside the upper lip at the gum (intraoral); GV26, GV27,"
        " CV24 at the lips",
        "electrode inside the mouth (GV28; a warning at the lips: GV26, GV27, CV24)",
    ),
    Rule(
        "patient-pregnancy-point",
        "error",
        None,
        "",
        f"clinical practice; {WHO} regions",
        "pregnant: LI4, SP6, BL60, BL67, GB21, abdominal and sacral points",
    ),
    Rule(
        "patient-implanted-device",
        "error",
        None,
        "",
        f"{FDA}: contraindication",
        "implanted device (pacemaker, ICD, stimulator): no stimulation",
    ),
    Rule(
        "patient-epilepsy",
        "warning",
        None,
        "",
        "clinical practice (precaution)",
        "epilepsy: stimulate only under supervision",
    ),
    Rule(
        "patient-anticoagulant",
        "warning",
        None,
        "",
        ANTICOAGULANT,
        "anticoagulant use: bleeding risk at needle sites; modified needling",
    ),
    # --- course rules (stimctl.clinic.courserules; docs/COURSE.md) ---------------------------
    Rule("course-schema", "error", None, "", COURSE_FORMAT, "course plan structure/type errors"),
    Rule(
        "course-escalation",
        "error",
        None,
        "",
        f"{SEED}; {IHS_CHRONIC}",
        "after the response check, a dose stronger than any delivered in the course while headache"
        " days are not 30 % below baseline (or cannot be judged: diary on < 21 of 28 days)",
    ),
    Rule(
        "course-before-ea-stage",
        "warning",
        None,
        "",
        SEED,
        "stimulation in a session before the plan's first stage with a profile",
    ),
    Rule("course-interval-short", "warning", None, "days", SEED, "sooner than the plan's interval"),
    Rule("course-beyond-plan", "warning", None, "", SEED, "a session after the plan's last one"),
    Rule(
        "course-baseline-short",
        "warning",
        None,
        "days",
        f"{SEED} (two weeks of diary before the first session); {IHS_CHRONIC}",
        "baseline diary shorter than the plan asks: response cannot be judged reliably",
    ),
    Rule(
        "course-diary-stale",
        "warning",
        None,
        "days",
        SEED,
        "no diary entry in the last 14 days: response cannot be judged",
    ),
    Rule(
        "course-medication-overuse",
        "warning",
        None,
        "days/30",
        ICHD3_MOH,
        "acute medication on >= 10 days per 30 (ergot, triptan, opioid, combination, or several"
        " classes together) or >= 15 (paracetamol, NSAID), for more than 3 months",
    ),
    Rule(
        "course-responder",
        "info",
        None,
        "",
        f"{SEED}; {IHS_EPISODIC}",
        "headache days >= 50 % below baseline in each of the last two 28-day windows:"
        " the plan's maintenance (taper) applies",
    ),
)
#: code -> Rule: the single table of rule constants and their sources.
RULES: dict[str, Rule] = {rule.code: rule for rule in _RULES}
