"""Understand a task written in plain words, offline and deterministically.

This is poise's rule-based mind. ``parse_task`` (the draft of ``read_task``) turns a sentence such as
"catch machine failures in ai4i.csv, keep precision above 0.5, two minutes" into a
:class:`~poise.contracts.TaskDraft`. It is pure string processing with regular expressions:
the user's text is data, nothing in it is executed or evaluated, and the column names of the
header are only *matched* against the text, never read as instructions. Only the standard
library is imported: this module sits on the CLI's start-up path.

How it works
------------
The text is read in passes. Each pass recognises one kind of fact and masks the words it
used (a same-length blank that also ends the clause), so no later pass can read them again:
the ``2020`` of ``ai4i2020.csv`` is gone before anyone looks for a budget, and the ``0.5`` of
"precision above 0.5" is gone before the budget and seed passes run. The passes, in order:

1. data path: a token ending in .csv, .csv.gz, .tsv, .txt, .parquet or .pq, quoted (may then
   contain spaces) or bare; the ``data`` argument wins over a path found in the text;
2. seed: "seed 42", "random seed = 7", "random_state 3", "42 as the seed";
3. metric names: PR-AUC, ROC AUC, MCC, balanced accuracy, F1, F2 / F0.5 / F-beta, G-mean,
   "recall at precision ...", "precision at recall ...";
4. precision / recall floors: "precision above 0.5", "at least 90% precision",
   "catch at least 80% of them", "miss no more than 10%";
5. budget: "two minutes", "90s", "1.5 minutes", "half an hour", "a minute and a half",
   "budget 300", "00:10:00", compounds such as "an hour and 30 minutes" or "2h30m";
6. positive label: "positive class is yes", "the rare class 'bad'", "where y == 'yes'";
7. target, last, on what is left (see ``_find_target``).

Rules chosen where words are ambiguous
--------------------------------------
* Metric: a named metric wins ("F1 with precision above 0.5" -> f1, min_precision kept).
  Otherwise floors decide: with both a precision and a recall floor, an explicit objective
  ("maximise recall" / "maximise precision") picks the constrained metric; failing that the
  floor mentioned first is the constraint (precision first -> recall_at_precision). Both
  numbers are always kept in the draft. Otherwise a stated preference decides: "recall
  matters more than precision", "prioritise recall", "maximise recall" (with no floor) ->
  f_beta with beta 2; the precision-leaning phrases -> f_beta with beta 0.5. Else None.
* Thresholds: "50%", "50 percent" and bare numbers of 2 and above ("precision over 50") are
  percentages; "miss no more than 10%" is a recall floor of 0.9; "9 out of 10" is 0.9;
  "0,5" is 0.5. A floor above 100% (a bare 1.2 included) or of 0 is not dropped: it is a
  problem of the reading, and so are a negative budget and a beta of 0. Metrics named after
  the first are shown back as not used.
* Budget: the first duration within range that follows a budget word ("within", "in",
  "budget", "for", ...) wins, else the first duration within range; a bare number counts only
  after "budget", "time limit" or "timeout" and is read as seconds. "a second" is never a
  budget (too often an ordinal). With no duration in range, one out of range is a problem.
* Other languages: German, French and Spanish words for precision, recall, "at least" and the
  time units are read ("Präzision mindestens 50 %, 30 Sekunden").
* Target, with a header: (1) a column named next to a target cue ("predict X", "target is
  X", "label X", "X column", "X as the target"), or quoted, backticked or alone in
  parentheses ("customer churn (Churn)"), unless the clause says to drop or ignore it;
  (2) a quoted name after a target cue that matches no column, returned as written so the
  guardrails can refuse it by name; (3) the column whose every word matches the outcome
  words, those after an outcome verb ("catch machine failures" -> machine_failure, "who will
  churn" -> Churn) or before an outcome noun ("fraud detection", "churn model"); with no
  outcome cue at all, any word outside a drop/ignore/using clause may name it; of several,
  the later column (labels tend to come last); (4) the one column the text mentions, when it
  says nothing of what it is for ("Binary classification on Churn") and no column is called
  target / label / ...; (5) a name the text
  gives that is no column: the one word after "predict" ("predict churn in x.csv"), or a
  bare word after "target is" / "label:" -- kept as written, so the guardrails refuse it and
  list close names instead of training something else; then guesses, which the guardrails
  show the person: (6) a column literally named target / label / class / outcome / y; (7)
  the unique column that shares most words with the outcome ("find defaults" ->
  default_payment_next_month). Without a header only explicit names are returned: quoted
  names, a word after "target"/"label"/"column", "X column", or "predict X" when X looks
  like an identifier (has an underscore, a digit or an inner capital).
* What is left: :func:`read_task` reports every number still in the text after the passes
  (with the word after it: "5-fold", "top 10%"), every duration and floor not used, and the
  out-of-range values as problems; the guardrails turn the first into notices and the second
  into errors.
* Positive label: numbers become int / float (quoted or not); anything else stays a string.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from poise.contracts import MAX_BUDGET_SECONDS, TaskDraft, normalise_column_name

_I = re.IGNORECASE
_MAX_TEXT = 4000
_MASK = ";"

# ------------------------------------------------------------------ text helpers

_TRANSLATE = str.maketrans({
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'", "\u201a": "'",
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " ", "\t": " ",
})


def _clean(text: str) -> str:
    text = (text or "")[:_MAX_TEXT].translate(_TRANSLATE)
    # A decimal comma after a leading zero ("0,5") cannot be a thousands separator.
    return re.sub(r"(?<![\w.,])0,(?=\d)", "0.", text)


def _mask(text: str, start: int, end: int, keep: str = "") -> str:
    """Blank text[start:end] keeping its length; ``keep`` survives at the front, else a clause break."""
    filler = keep if keep else _MASK
    return text[:start] + filler[: end - start].ljust(end - start) + text[end:]


def _mask_all(text: str, spans: list[tuple[int, int]]) -> str:
    for start, end in spans:
        text = _mask(text, start, end)
    return text


def _words(text: str) -> list[str]:
    """Lower-case word pieces, splitting camelCase and any punctuation: 'customerID' -> customer, id."""
    return [w.lower() for w in re.findall(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+", text)]


_SUFFIXES = ("ations", "ation", "ings", "ing", "ures", "ure", "ers", "er", "ies", "ied", "ed", "es", "s")


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + ("y" if suffix in ("ies", "ied") else "")
    return word[:-1] if word.endswith("e") and len(word) >= 4 else word  # "file" meets "filed"


def _stem_match(a: str, b: str) -> bool:
    if a == b:
        return True
    short, long_ = sorted((a, b), key=len)
    return len(short) >= 4 and long_.startswith(short)


# ------------------------------------------------------------------ numbers

_DIGITS = r"(?:\d+(?:\.\d+)?|\.\d+)"
_NUM = rf"(?<![\w.]){_DIGITS}"
_END = r"(?!\w)(?!\.\d)"
_PERCENT_WORDS = r"%|percent\b|per\s*cent\b|prozent\b|pour\s*cent\b|por\s*ciento\b"
_PCT = rf"(?:\s*(?P<pct>{_PERCENT_WORDS}))?"

_ONES = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split()
)}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_ONES_RE = "|".join(sorted(_ONES, key=len, reverse=True))
_SMALL_WORD = rf"(?:(?:{'|'.join(_TENS)})(?:[\s-]+(?:{_ONES_RE}))?|{_ONES_RE})(?![a-z])"
_WORD_NUM = rf"(?:(?:an?|{_SMALL_WORD})\s+hundred(?:\s+(?:and\s+)?{_SMALL_WORD})?|{_SMALL_WORD})"


def _word_value(words: str) -> float:
    total = 0
    for token in re.split(r"[\s-]+", words.lower()):
        if token in _ONES:
            total += _ONES[token]
        elif token in _TENS:
            total += _TENS[token]
        elif token in ("a", "an"):
            total += 1
        elif token == "hundred":
            total = max(total, 1) * 100
    return float(total)


def _fraction(value: str, percent: bool) -> float:
    """A threshold as a fraction: percentages and bare numbers of 2 or more are divided by 100.

    A bare number between 1 and 2 ("recall at least 1.2") is neither a fraction nor a percentage
    anyone writes that way: it stays as written, so the range check refuses it instead of reading 1.2 %.
    The result may fall outside (0, 1]; the caller reports that.
    """
    number = float(value)
    if percent or number >= 2:
        number /= 100
    return round(number, 10)


# ------------------------------------------------------------------ data path

_EXT = r"(?:csv\.gz|csv|tsv|txt|parquet|pq)"
_QUOTED_PATH = re.compile(rf"(?<!\w)([\"'`])([^\"'`\n]*?\.{_EXT})\1", _I)
_BARE_PATH = re.compile(
    rf"(?<![\w/.~\\:-])((?:[a-z][a-z0-9+.-]*://|[a-z]:[\\/])?[\w.~/\\+-]*[\w~-]\.{_EXT})(?![\w/])", _I
)


def _take_path(text: str) -> tuple[str | None, str]:
    found: list[tuple[int, int, str]] = []
    for match in _QUOTED_PATH.finditer(text):
        found.append((match.start(), match.end(), match.group(2).strip()))
    text_wo_quoted = _mask_all(text, [(s, e) for s, e, _ in found])
    for match in _BARE_PATH.finditer(text_wo_quoted):
        found.append((match.start(), match.end(), match.group(1)))
    found.sort()
    return (found[0][2] if found else None), _mask_all(text, [(s, e) for s, e, _ in found])


# ------------------------------------------------------------------ seed

_SEED = re.compile(
    r"\b(?:random[\s_-]*(?:seed|state)|seed)\b"
    r"(?:\s*(?:[:=]+|\b(?:is|of|to|equals|set|at|number|value)\b)){0,3}\s*"
    rf"(?<![\w.])(?P<n>\d+){_END}",
    _I,
)
_SEED_AFTER = re.compile(r"(?<![\w.])(?P<n>\d+)\s+as\s+(?:the\s+|a\s+)?(?:random\s+)?(?:seed|state)\b", _I)


def _take_seed(text: str) -> tuple[int | None, str]:
    matches = sorted([*_SEED.finditer(text), *_SEED_AFTER.finditer(text)], key=lambda m: m.start())
    seed = next((int(m.group("n")) for m in matches if int(m.group("n")) <= 2**31 - 1), None)
    return seed, _mask_all(text, [m.span() for m in matches])


# ------------------------------------------------------------------ metric names

_BEFORE_PRECISION = rf"(?=(?:an?\s+)?(?:{_DIGITS}\s*(?:%|percent)?\s*)?(?:min(?:imum)?[\s_-]*)?precision\b)"
_BEFORE_RECALL = rf"(?=(?:an?\s+)?(?:{_DIGITS}\s*(?:%|percent)?\s*)?(?:min(?:imum)?[\s_-]*)?recall\b)"
_METRIC_NAMES: list[tuple[str, re.Pattern[str]]] = [(metric, re.compile(pattern, _I)) for metric, pattern in [
    ("average_precision",
     r"\b(?:pr[\s_-]*auc|auc[\s_-]*pr|au[\s_-]?prc|(?:average|avg)[\s_-]*precision|pr[\s_-]+curve"
     r"|area\s+under\s+(?:the\s+)?(?:pr|precision[\s_-]*recall)(?:\s+curve)?"
     r"|precision[\s_-]*recall\s+(?:auc|area|curve))\b"),
    ("roc_auc",
     r"\b(?:roc[\s_-]*auc|auc[\s_-]*roc|au[\s_-]?roc|area\s+under\s+(?:the\s+)?roc(?:\s+curve)?"
     r"|roc(?:\s+curve)?|auc)\b"),
    ("mcc", r"\b(?:mcc|matthews?(?:'s)?(?:\s+corr\w*)?(?:\s+coef\w*)?|phi\s+coefficient)\b"),
    ("balanced_accuracy", r"\b(?:balanced[\s_-]*acc(?:uracy)?|bacc)\b"),
    ("g_mean", r"\b(?:g[\s_-]?mean|geometric[\s_-]+mean)\b"),
    # Only "recall at" is masked: the floor pass still reads "precision 0.5" / "50% precision".
    ("recall_at_precision", rf"\brecall[\s_-]*(?:@|at)[\s_-]*{_BEFORE_PRECISION}"),
    ("precision_at_recall", rf"\bprecision[\s_-]*(?:@|at)[\s_-]*{_BEFORE_RECALL}"),
    ("f_beta",
     r"\bf[\s_-]*beta\b(?:[\s_-]*(?:score|measure))?"
     rf"(?:\s*\(?\s*(?:with\s+)?(?:beta|\u03b2)?\s*(?:=|of|:|is)?\s*(?P<beta>{_DIGITS}){_END})?"),
    ("f_number", rf"\bf[-_]?(?P<beta>{_DIGITS})(?:[\s_-]*(?:score|measure))?{_END}"),
    ("f1", r"\bf[\s_-]*(?:score|measure)\b"),
    ("beta", rf"(?:\bbeta|\u03b2)\s*(?:=|of|:|is)?\s*(?P<beta>{_DIGITS}){_END}"),
]]


def _take_metric_names(text: str) -> tuple[str | None, float | None, list[str], list[str], str]:
    """(first named metric, beta, other metrics named, a beta out of range as a problem, masked text).

    Every name found is masked."""
    hits: list[tuple[int, str, float | None]] = []
    for metric, pattern in _METRIC_NAMES:
        for match in pattern.finditer(text):
            beta = float(match.group("beta")) if "beta" in pattern.groupindex and match.group("beta") else None
            if metric == "f_number":
                if not beta:
                    continue
                metric_found, beta = ("f1", None) if beta == 1 else ("f_beta", beta)
            else:
                metric_found = metric
            hits.append((match.start(), metric_found, beta))
            text = _mask(text, *match.span())
    hits.sort(key=lambda hit: hit[0])
    betas = [b for _, _, b in hits if b is not None and 0 < b <= 100]
    problems = [f"beta {b:g} is outside (0, 100]: beta weighs recall against precision and must be above 0"
                for _, _, b in hits if b is not None and not 0 < b <= 100]
    named = list(dict.fromkeys(m for _, m, _ in hits if m != "beta"))
    beta = betas[0] if betas else None
    metric = named[0] if named else ("f_beta" if beta is not None else None)
    # poise optimises one metric: the others named are shown back, not silently dropped
    unused = [f"{other} (poise optimises one metric, the first named: {metric})" for other in named[1:]]
    return metric, beta, unused, problems, text


# ------------------------------------------------------------------ precision / recall floors

_MID_WORDS = (
    "of|at|least|most|above|over|greater|higher|more|than|no|not|never|lower|less|below|under|to|be|been|is|"
    "stays?|staying|remains?|must|should|shall|kept|keep|needs?|has|have|minimum|min|floor|threshold|target|"
    "a|an|the|drops?|dropping|falls?|falling|go|goes|gets?|exceeds?|exceeding|or|equal|equals|beyond|around|"
    "about|roughly|approximately|always|it|we|want|require[sd]?|reach(?:es)?|hits?|bound|held|holds?|sits?|"
    "don't|doesn't|can't|cannot|shouldn't|mustn't|won't|"
    # German, French, Spanish: "Präzision mindestens 50 %", "précision d'au moins 80 %", "precisión de al menos 0,8"
    "mindestens|wenigstens|minimal|über|ueber|von|soll|sollte|muss|ist|bei|größer|groesser|als|"
    "d'au|au|moins|supérieure?|superieure?|à|de|du|la|le|une?|doit|être|est|"
    "al|menos|por|lo|mínim[oa]|minim[oa]|mayor|que|el|debe|ser|sea"
)
_MID = rf"(?:\s*(?:[:=\u2265>\u2264<~]+|(?<!\w)(?:{_MID_WORDS})(?!\w))){{0,8}}\s*"
_FLOOR_KEYS: list[tuple[str, bool, str]] = [  # (floor, complement, key words)
    ("precision", False, r"precision|ppv|positive\s+predictive\s+value|pr[äa]zision|praezision|pr[ée]cision"
                         r"|precisi[óo]n"),
    ("recall", False, r"recall|sensitivity|tpr|true\s+positive\s+rate|detection\s+rate|hit\s+rate|catch\s+rate"
                      r"|sensitivit[äa]t|trefferquote|rappel|sensibilit[ée]|sensibilidad|exhaustividad"),
    ("precision", True, r"false\s+discovery\s+rate|fdr"),
    ("recall", True, r"false\s+negative\s+rate|fnr|miss\s+rate"),
]
# Time units, with the seconds each is worth; the longest spelling first inside each group.
_UNITS: list[tuple[int, str]] = [
    (86400, r"days?|tage?n?|jours?|d[ií]as?"),
    (3600, r"hours?|hrs?|h|stunden?|std|heures?|horas?"),
    (60, r"minutes?|minuten|minutos?|mins?|m"),
    (1, r"seconds?|secondes?|sekunden?|segundos?|secs?|sek|seg|s"),
]
_UNIT_WORDS = "|".join(words for _, words in _UNITS)


def _unit_seconds(unit: str) -> int:
    return next(seconds for seconds, words in _UNITS if re.fullmatch(words, unit, _I))


_FORWARD_FLOORS = [
    (floor, complement, re.compile(
        rf"(?<!\w)(?:min(?:imum)?[\s_-]*)?(?:{keys})(?!\w){_MID}(?P<v>{_NUM}){_PCT}{_END}"
        rf"(?!\s*(?:{_UNIT_WORDS})(?!\w))", _I))
    for floor, complement, keys in _FLOOR_KEYS
]
_AT_LEAST = (r"(?:(?:\b(?:at\s+least|over|above|more\s+than|no\s+less\s+than|minimum(?:\s+of)?|min|mindestens"
             r"|au\s+moins|al\s+menos|por\s+lo\s+menos)\b|>=|\u2265|>)\s*)?")
_REVERSE_FLOORS = [
    (floor, complement, re.compile(
        rf"{_AT_LEAST}(?P<v>{_NUM}){_PCT}\s+(?:of\s+|de\s+|an\s+)?(?:min(?:imum)?\s+)?(?:{keys})(?!\w)", _I))
    for floor, complement, keys in _FLOOR_KEYS
]
_SHARE = (
    rf"(?:(?<![\w.])(?P<a>\d+)\s+(?:in|out\s+of)\s+(?P<b>\d+){_END}"
    rf"|(?P<v>{_NUM})\s*(?P<pct>{_PERCENT_WORDS}))"
    r"(?:\s+of(?:\s+(?:the|all|them|those|these|our))?)?"
)
_CATCH = re.compile(
    r"\b(?P<verb>(?:catch|find|detect|flag|spot|identify|capture|recover)\w*)\s+"
    r"(?:(?:at\s+least|over|more\s+than|no\s+less\s+than|about|around|roughly|nearly|almost)\s+|>=?\s*|\u2265\s*)?"
    + _SHARE, _I,
)
# "catch fraudulent transfers, ideally at least 80% of them": the share in a clause of its own
_SHARE_OF = re.compile(
    r"\b(?:at\s+least|no\s+less\s+than|more\s+than)\s+"
    rf"(?P<v>{_NUM})\s*(?P<pct>{_PERCENT_WORDS})\s+of\s+(?:them|those|these|all|the\s+\w+)\b", _I,
)
_CATCH_VERB = re.compile(r"\b(?:catch|find|detect|flag|spot|identify|capture)\w*", _I)
_MISS = re.compile(
    r"\b(?P<verb>(?:miss|overlook)\w*)\s+"
    r"(?:(?:no\s+more\s+than|not\s+more\s+than|more\s+than|at\s+most|less\s+than|fewer\s+than|under|below|only"
    r"|max(?:imum)?|up\s+to)\s+|<=?\s*|\u2264\s*)?"
    + _SHARE, _I,
)


@dataclass
class _Floor:
    position: int
    kind: str  # "precision" | "recall"
    value: float
    words: str  # as written


def _share_value(match: re.Match[str]) -> float:
    if match.group("a"):
        a, b = int(match.group("a")), int(match.group("b"))
        return round(a / b, 10) if b else 0.0
    return _fraction(match.group("v"), percent=True)


def _take_floors(text: str) -> tuple[list[_Floor], list[str], str]:
    """(floors in order of mention, floors out of range as problems, masked text)."""
    floors: list[_Floor] = []
    for patterns in (_FORWARD_FLOORS, _REVERSE_FLOORS):
        for kind, complement, pattern in patterns:
            for match in pattern.finditer(text):
                value = _fraction(match.group("v"), bool(match.group("pct")))
                floors.append(_Floor(match.start(), kind, round(1 - value, 10) if complement else value,
                                     match.group().strip()))
                text = _mask(text, *match.span())
    for kind, pattern in (("recall", _CATCH), ("miss", _MISS)):
        for match in pattern.finditer(text):
            value = _share_value(match)
            floors.append(_Floor(match.start(), "recall", round(1 - value, 10) if kind == "miss" else value,
                                 match.group().strip()))
            # The verb stays so "catch at least 80% of machine failures" still names the outcome.
            text = _mask(text, *match.span(), keep=match.group("verb"))
    verb = _CATCH_VERB.search(text)
    for match in _SHARE_OF.finditer(text) if verb else ():
        if match.start() > verb.start():
            floors.append(_Floor(match.start(), "recall", _fraction(match.group("v"), True), match.group().strip()))
            text = _mask(text, *match.span())
    floors.sort(key=lambda floor: floor.position)
    problems = [f"{floor.kind} floor {floor.words!r} " + ("asks for more than 100%" if floor.value > 1 else
                                                         "is 0 or less, which constrains nothing")
                for floor in floors if not 0 < floor.value <= 1]
    return [floor for floor in floors if 0 < floor.value <= 1], problems, text


_OBJECTIVE = re.compile(
    r"\b(?:maximi[sz](?:e|ing)|optimi[sz](?:e|ing)|boost|increase|improve|max(?:imum)?|highest|best|most|"
    r"as\s+much)\s+(?:the\s+|possible\s+)?(?P<kind>recall|precision)\b", _I,
)
_LEANS: list[tuple[str, str]] = []  # (regex, the side it leans to), filled below for both sides
for _side, _other in (("recall", "precision"), ("precision", "recall")):
    _LEANS += [
        (rf"\b{_side}\s+(?:really\s+)?(?:matters|is|counts|weighs)\s+more\b", _side),
        (rf"\b{_side}\s+(?:is\s+)?(?:more\s+important|what\s+matters)\b", _side),
        (rf"\b(?:prioriti[sz]e|favou?r|emphasi[sz]e|prefer|focus\s+on|care\s+(?:more\s+)?about)\s+{_side}\b", _side),
        (rf"\b{_side}\s+over\s+{_other}\b", _side),
        (rf"\b{_other}\s+(?:matters|is|counts)\s+less\b", _side),
    ]
_LEANS += [
    (r"\bmissing\s+(?:an?\s+|one\s+)?\w+\s+(?:is|costs)\s+(?:much\s+|far\s+)?(?:worse|more)\b", "recall"),
    (r"\bfalse\s+alarms?\s+(?:are|is)\s+(?:cheap|ok|okay|fine|acceptable|tolerable)\b", "recall"),
    (r"\bfalse\s+alarms?\s+(?:are|is)\s+(?:costly|expensive|worse|bad|annoying)\b", "precision"),
]
_LEAN_PATTERNS = [(re.compile(pattern, _I), side) for pattern, side in _LEANS]


def _objective(text: str) -> str | None:
    match = _OBJECTIVE.search(text)
    return match.group("kind").lower() if match else None


def _lean(text: str) -> str | None:
    """Which side a stated preference leans to, the first one mentioned."""
    hits = [(m.start(), side) for pattern, side in _LEAN_PATTERNS for m in [pattern.search(text)] if m]
    return min(hits)[1] if hits else None


def _choose_metric(
    named: str | None, floors: list[_Floor], objective: str | None, lean: str | None
) -> tuple[str | None, float | None]:
    """The metric and (for a preference) its beta; see the module docstring for the rules."""
    if named:
        return named, None
    kinds = [floor.kind for floor in floors]
    if kinds:
        if objective == "recall" and "precision" in kinds:
            return "recall_at_precision", None
        if objective == "precision" and "recall" in kinds:
            return "precision_at_recall", None
        return ("recall_at_precision" if kinds[0] == "precision" else "precision_at_recall"), None
    lean = lean or objective
    if lean:
        return "f_beta", (2.0 if lean == "recall" else 0.5)
    return None, None


# ------------------------------------------------------------------ budget

_AMOUNT = (
    rf"(?P<num>(?:(?<=\d[hm])|(?<![\w.])){_DIGITS})"
    rf"|(?P<word>(?<![\w.]){_WORD_NUM})"
    r"|(?P<half>(?<![\w.])half\s+(?:an?\s+)?)"
    r"|(?P<quarters>(?<![\w.])three[\s-]quarters?\s+(?:of\s+)?(?:an?\s+)?)"
    r"|(?P<quarter>(?<![\w.])(?:a\s+)?quarter\s+(?:of\s+)?(?:an?\s+)?)"
    r"|(?P<couple>(?<![\w.])(?:a\s+)?couple\s+(?:of\s+)?)"
    r"|(?P<one>(?<![\w.])an?\s+)"
)
_DURATION = re.compile(
    rf"(?:{_AMOUNT})(?P<half1>\s+and\s+a\s+half)?[\s-]*(?P<unit>{_UNIT_WORDS})(?![^\W\d_])"
    r"(?P<half2>\s+and\s+a\s+half)?",
    _I,
)
_BARE_BUDGET = re.compile(
    r"\b(?:time[\s_-]*)?(?:budget|limit|timeout)(?:[\s_-]*(?:seconds|secs|s))?\b"
    rf"(?:\s*(?:[:=]+|\b(?:of|is|to|at|around|about|set)\b)){{0,3}}\s*(?P<num>{_NUM}){_END}(?!\s*%)",
    _I,
)
_CLOCK = re.compile(r"(?<![\w.:])(?P<h>\d{1,3}):(?P<m>[0-5]\d):(?P<s>[0-5]\d)(?![\w:])")  # "time: 00:10:00"
_BUDGET_CUE = re.compile(
    r"\b(?:budget|within|in|for|limit|max|maximum|spend|run|take|takes|under|most|than|up\s+to|timeout|give|allow"
    r"|only|just|innerhalb|binnen|maximal|höchstens|en|dans|pendant|durante|máximo)\W*$", _I,
)


def _amount(match: re.Match[str]) -> float | None:
    """The number in front of a unit; None when the unit is too ambiguous for that kind of amount."""
    unit = match.group("unit").lower()
    short = len(unit) == 1
    if match.group("num"):
        return float(match.group("num"))
    if short:
        return None
    if match.group("word"):
        return _word_value(match.group("word"))
    if match.group("one"):
        return None if unit.startswith("s") else 1.0
    fixed = {"half": 0.5, "quarters": 0.75, "quarter": 0.25, "couple": 2.0}
    return next(value for name, value in fixed.items() if match.group(name))


def _seconds(match: re.Match[str]) -> float | None:
    amount = _amount(match)
    if amount is None:
        return None
    if match.group("half1") or match.group("half2"):
        amount += 0.5
    return amount * _unit_seconds(match.group("unit"))


#: Durations said as a fixed phrase, with no number to read: a quarter or half of an hour.
_PHRASE_DURATIONS = [(re.compile(rf"(?<![\w]){pattern}(?![\w])", _I), seconds) for pattern, seconds in (
    (r"quarter[\s-]hour", 900), (r"half[\s-]hour", 1800),
    (r"(?:un\s+)?quart\s+d'\s*heure", 900), (r"(?:une\s+)?demi[\s-]heure", 1800),
    (r"(?:eine\s+)?viertelstunde", 900), (r"(?:eine[rn]?\s+)?halbe[nr]?\s+stunde", 1800),
    (r"(?:un\s+)?cuarto\s+de\s+hora", 900), (r"(?:una\s+)?media\s+hora", 1800),
)]


def _durations(text: str) -> list[tuple[int, int, float]]:
    """(start, end, seconds) of every duration, compounds such as '1 hour 30 minutes' summed."""
    phrases: list[tuple[int, int, float]] = []
    for pattern, seconds in _PHRASE_DURATIONS:
        for match in pattern.finditer(text):
            phrases.append((match.start(), match.end(), float(seconds)))
            text = _mask(text, *match.span())
    found: list[tuple[int, int, float, float]] = []  # start, end, seconds, unit size
    for match in _DURATION.finditer(text):
        seconds = _seconds(match)
        if seconds is None:
            continue
        unit = _unit_seconds(match.group("unit"))
        if found and re.fullmatch(r"\s*(?:,|and|&|plus)?\s*", text[found[-1][1]:match.start()], _I) \
                and unit < found[-1][3]:
            start, _, total, _ = found.pop()
            found.append((start, match.end(), total + seconds, unit))
        else:
            found.append((match.start(), match.end(), seconds, unit))
    return sorted([(start, end, seconds) for start, end, seconds, _ in found] + phrases)


_NEGATIVE = re.compile(r"(?:^|[\s:=(])-$")  # attached to the number: " - " is a dash


def _take_budget(text: str) -> tuple[float | None, list[str], list[str], str]:
    """(budget, durations not used, a budget out of range as a problem, masked text)."""
    original = text
    durations = _durations(text)
    text = _mask_all(text, [(s, e) for s, e, _ in durations])
    candidates = [(s, e, bool(_BUDGET_CUE.search(text[max(0, s - 25):s])), v) for s, e, v in durations]
    for i, (s, e, cued, v) in enumerate(candidates):  # "-5 minutes": the sign is part of what the user said
        if sign := _NEGATIVE.search(original[:s]):
            candidates[i] = (original.rindex("-", sign.start(), s), e, cued, -v)
    for pattern in (_BARE_BUDGET, _CLOCK):
        for match in pattern.finditer(text):
            seconds = (float(match.group("num")) if pattern is _BARE_BUDGET else
                       3600 * int(match.group("h")) + 60 * int(match.group("m")) + int(match.group("s")))
            candidates.append((match.start(), match.end(), pattern is _BARE_BUDGET, seconds))
            text = _mask(text, *match.span())
    if not candidates:
        return None, [], [], text
    candidates.sort(key=lambda c: (not 0 < c[3] <= MAX_BUDGET_SECONDS, not c[2], c[0]))
    words = [original[s:e].strip() for s, e, _, _ in candidates]
    budget = candidates[0][3]
    if not 0 < budget <= MAX_BUDGET_SECONDS:
        problem = (f"budget {words[0]!r} is " + ("no time at all" if budget <= 0 else
                   f"more than the {MAX_BUDGET_SECONDS // 86400:g} days poise accepts"))
        return None, words[1:], [problem], text
    return budget, words[1:], [], text


# ------------------------------------------------------------------ positive label

_VALUE = r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\n]{1,64})(?P=q)|(?P<bv>[+-]?\w[\w.+-]{0,63}))"
_LABEL_STOP = {
    "the", "a", "an", "one", "which", "that", "this", "it", "in", "on", "for", "with", "from", "to", "of", "and",
    "or", "is", "be", "what", "whatever", "rarer", "rare", "minority", "positive", "class", "label", "value",
    "unknown", "not", "whichever", "as", "at", "by", "within",
}
_TYPICAL_LABELS = {"yes", "no", "true", "false", "y", "n", "t", "f", "bad", "good", "pos", "neg", "positive",
                   "negative", "fraud", "churn", "churned", "default", "failure", "fail", "failed", "spam"}
_POSITIVE = r"(?:positive|pos|rare|rarer|minority|interesting|event)"
_LABEL_FORWARD = re.compile(
    rf"\b(?:{_POSITIVE}[\s_-]*(?:class|label|value|outcome|category|case)|target\s+(?:class|value))\b"
    r"(?P<verb>\s*(?:==|=|:|\bis\b|\bbeing\b|\bshould\s+be\b|\bwill\s+be\b|\bequals\b|\bas\b))?"
    r"(?:\s+the\s+(?:one|value|label)s?)?(?:\s+(?:labell?ed|called|named|marked|coded\s+as|encoded\s+as))?"
    rf"\s*{_VALUE}",
    _I,
)
_LABEL_POSITIVE_IS = re.compile(rf"\bpositive\s*(?P<verb>==|=|:|\bis\b)\s*{_VALUE}", _I)
_LABEL_REVERSE = re.compile(
    rf"(?:\b(?:label|class|value)\s+)?(?<![\w.]){_VALUE}\s+(?:is|are|=|means|marks|being)\s+(?:the\s+|our\s+)?"
    rf"{_POSITIVE}(?:[\s_-]*(?:class|label|one|case|outcome|event))?\b",
    _I,
)
_LABEL_TREAT = re.compile(
    rf"\b(?:treat|count|consider|use|mark|take)\s+{_VALUE}\s+as\s+(?:the\s+|a\s+)?"
    rf"(?P<verb>{_POSITIVE}|target(?=[\s_-]*(?:class|value|label)))"
    r"(?:[\s_-]*(?:class|label|value|case|one))?\b",
    _I,
)
_COLREF = r"(?P<col>(?P<cq>[\"'`])[^\"'`\n]{1,100}(?P=cq)|[^\s=<>!\"'`,;()]{1,60}(?:\s+[^\s=<>!\"'`,;()]{1,60}){0,3}?)"
_WHERE = re.compile(rf"\b(?:where|when|if|with)\s+{_COLREF}\s*(?P<op>==|=|\bequals\b|\bis\b)\s*{_VALUE}", _I)
_ONE_COLREF = r"(?P<col>(?P<cq>[\"'`])[^\"'`\n]{1,100}(?P=cq)|[^\s=<>!\"'`,;()]{1,60})"
_ASSIGN = re.compile(r"\s*=\s*(?P<q>[\"'`])(?P<qv>[^\"'`\n]{1,64})(?P=q)")
_EQUALS = re.compile(rf"(?<![\w.]){_ONE_COLREF}\s*==\s*{_VALUE}", _I)


def _as_label(value: str) -> bool | int | float | str:
    if re.fullmatch(r"[+-]?\d+", value):
        return int(value)
    if re.fullmatch(r"[+-]?(?:\d+\.\d*|\.\d+)(?:e[+-]?\d+)?", value, _I):
        return float(value)
    return value


def _label_value(match: re.Match[str], lenient: bool) -> str | None:
    """The value a label pattern captured, or None when a bare word is not believable as a label."""
    if match.group("qv") is not None:
        return match.group("qv").strip() or None
    value = match.group("bv").rstrip(".")
    if not value or value.lower() in _LABEL_STOP:
        return None
    if re.fullmatch(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)", value) or value.lower() in _TYPICAL_LABELS or lenient:
        return value
    return None


def _column_of(ref: str, columns: Sequence[str] | None) -> str | None:
    ref = re.sub(r"^the\s+", "", ref.strip().strip("\"'`"), flags=_I)
    if not columns:
        return ref if re.fullmatch(r"[\w.?-]+", ref) and ref.lower() not in _LABEL_STOP else None
    return _match_column(ref, columns)


def _take_where(text: str, columns: Sequence[str] | None) -> tuple[list[tuple[int, str, str | None]], str]:
    """'where y == "yes"': the positive label and the column it names."""
    hits: list[tuple[int, str, str | None]] = []
    for pattern in (_WHERE, _EQUALS):
        for match in pattern.finditer(text):
            op = match.group("op").lower() if "op" in pattern.groupindex else "=="
            column = _column_of(match.group("col"), columns)
            value = _label_value(match, lenient=True)
            if value is None or column is None or (op in ("is", "equals") and not columns):
                continue
            hits.append((match.start(), value, column))
            text = _mask(text, *match.span())
    for match in _ASSIGN.finditer(text) if columns else ():  # "(Loan Status = 'Charged Off')"
        words = re.findall(r"[^\s=<>!\"'`,;()]+", text[max(0, match.start() - 200):match.start()])
        column = next((c for n in range(min(4, len(words)), 0, -1)
                       if (c := _match_column(" ".join(words[-n:]), columns))), None)
        if column:
            hits.append((match.start(), match.group("qv").strip(), column))
            text = _mask(text, *match.span())
    return hits, text


def _take_label(text: str, columns: Sequence[str] | None) -> tuple[str | None, str | None, str]:
    """(positive label, target column named by a 'where y == ...' clause, masked text)."""
    hits, text = _take_where(text, columns)
    for pattern in (_LABEL_FORWARD, _LABEL_POSITIVE_IS, _LABEL_REVERSE, _LABEL_TREAT):
        for match in pattern.finditer(text):
            lenient = "verb" in pattern.groupindex and bool(match.group("verb"))
            value = _label_value(match, lenient=lenient and pattern is not _LABEL_REVERSE)
            if value is not None:
                hits.append((match.start(), value, None))
                text = _mask(text, *match.span())
    if not hits:
        return None, None, text
    hits.sort(key=lambda hit: hit[0])
    where_column = next((column for _, _, column in hits if column), None)
    return hits[0][1], where_column, text


# ------------------------------------------------------------------ target

_CHUNK = re.compile(r"[^\s,;=:()\[\]{}]+")
_CONJUNCTIONS = {"and", "but", "while", "then", "so", "whereas"}
_POS_CUES = {"predict", "predicting", "predicts", "target", "label", "outcome", "column", "col", "forecast",
             "forecasting", "classify", "classifying", "response", "model", "modelling", "modeling"}
_STRONG_TARGET = {"target", "label", "outcome"}
_STRONG_NEG = {"ignore", "ignoring", "drop", "dropping", "exclude", "excluding", "without", "except", "not", "skip",
               "remove", "removing", "leak", "leaks", "leaky", "discard", "besides", "don't", "dont", "no"}
_WEAK_NEG = {"using", "use", "from", "with", "based", "via", "given", "by", "feature", "features", "include",
             "including", "plus", "also", "of"}
_OUTCOME_CUE = re.compile(
    r"(?:catch|find|detect|spot|flag|predict|forecast|identify|anticipate|foresee|classify|recogni[sz]|prevent"
    r"|screen|tell|miss|model)\w*|will|whether|who'll|likely"
)
_OUTCOME_NOUNS = {"model", "models", "detection", "detector", "prediction", "predictions", "predictor", "classifier",
                  "classification", "forecast", "forecasting", "alarm", "alarms", "alert", "alerts", "warning",
                  "warnings", "scoring", "scorer"}
_PHRASE_STOP = {"in", "from", "using", "with", "within", "on", "for", "under", "by", "based", "given", "at", "via",
                "or", "keeping", "keep", "when", "before", "after", "into", "than", "as", "while"}
_COLUMN_STOP = {"is", "has", "was", "did", "will", "the", "a", "an", "of", "flag", "label", "target", "y", "class",
                "outcome", "yn", "indicator", "ind"}
_LITERAL_TARGETS = ("target", "label", "class", "outcome", "y")


@dataclass
class _Chunk:
    text: str
    word: str  # lower case, letters and apostrophes only
    clause: int
    norm: str = ""
    stems: tuple[str, ...] = ()
    before: str = ""  # the character just before the chunk
    after: str = ""  # the first character after it that is not a space


def _chunks(text: str) -> list[_Chunk]:
    chunks: list[_Chunk] = []
    clause, previous_end = 0, 0
    for match in _CHUNK.finditer(text):
        raw = match.group()
        word = re.sub(r"[^a-z']", "", raw.lower())
        gap = text[previous_end:match.start()]
        ends = chunks and chunks[-1].text[-1] in ".!"
        if chunks and (re.search(r"[,;.!\n]", gap) or ends or word in _CONJUNCTIONS):
            clause += 1
        after = text[match.end():].lstrip()[:1]
        before = text[match.start() - 1] if match.start() else ""
        stems = tuple(_stem(w) for w in _words(raw))
        chunks.append(_Chunk(raw, word, clause, normalise_column_name(raw), stems, before, after))
        previous_end = match.end()
    return chunks


def _column_keys(columns: Sequence[str]) -> tuple[dict[str, str], dict[tuple[str, ...], str]]:
    by_norm: dict[str, str] = {}
    by_stems: dict[tuple[str, ...], str] = {}
    for column in columns:
        by_norm.setdefault(normalise_column_name(column), column)
        by_stems.setdefault(tuple(_stem(w) for w in _words(column)), column)
    by_norm.pop("", None)
    by_stems.pop((), None)
    return by_norm, by_stems


def _match_column(ref: str, columns: Sequence[str]) -> str | None:
    """The header column that ``ref`` names, ignoring case, spaces, punctuation and plural endings."""
    by_norm, by_stems = _column_keys(columns)
    return by_norm.get(normalise_column_name(ref)) or by_stems.get(tuple(_stem(w) for w in _words(ref)))


@dataclass
class _Mention:
    start: int
    end: int  # chunk indices, end exclusive
    column: str
    quoted: bool


def _mentions(chunks: list[_Chunk], columns: Sequence[str]) -> list[_Mention]:
    by_norm, by_stems = _column_keys(columns)
    found: list[_Mention] = []
    for i in range(len(chunks)):
        for length in range(min(6, len(chunks) - i), 0, -1):
            span = chunks[i:i + length]
            if span[-1].clause != span[0].clause:
                continue
            norm = "".join(chunk.norm for chunk in span)
            column = by_norm.get(norm) or by_stems.get(tuple(stem for chunk in span for stem in chunk.stems))
            if column:
                # quoted, backticked, or alone in parentheses: "churn (Churn)", "(has_fault; positive class 1)"
                bracketed = span[0].before == "(" and span[-1].after in (")", ";", ",", ":")
                found.append(_Mention(i, i + length, column, span[0].text[0] in "\"'`" or bracketed))
                break
    return found


def _cue(chunks: list[_Chunk], start: int, end: int) -> int:
    """+1 when the clause names this mention as the target, -1 when it hints at something else ("from",
    "using"), -2 when it says so ("drop", "ignore"), 0 when silent."""
    clause = chunks[start].clause
    back = [c.word for c in chunks[max(0, start - 6):start] if c.clause == clause]
    ahead = [c.word for c in chunks[end:end + 4] if c.clause == clause]
    if _STRONG_NEG & set(back) or {"leaks", "leak", "leaky"} & set(ahead):
        return -2
    if _STRONG_TARGET & set(ahead):
        return 1
    for word in reversed(back):
        if word in _POS_CUES:
            return 1
        if word in _WEAK_NEG:
            return -1
    return 1 if ahead[:1] in (["column"], ["col"]) else 0


def _explicit_column(chunks: list[_Chunk], columns: Sequence[str]) -> str | None:
    """A column the text points at: after a target cue, or quoted / in parentheses unless told to drop it."""
    ranked = []
    for mention in _mentions(chunks, columns):
        cue = _cue(chunks, mention.start, mention.end)
        if cue > 0 or (cue >= -1 and mention.quoted):
            ranked.append((0 if cue > 0 else 1, mention.start, mention.column))
    return min(ranked)[2] if ranked else None


def _sole_mention(chunks: list[_Chunk], columns: Sequence[str]) -> str | None:
    """The one column the text mentions without saying what it is for ("Binary classification on Churn")."""
    mentions = _mentions(chunks, columns)
    if len({m.column for m in mentions}) != 1 or any(_cue(chunks, m.start, m.end) for m in mentions):
        return None
    return mentions[0].column


def _phrase(chunks: list[_Chunk], around: int, step: int, size: int) -> list[str]:
    """Words next to chunk ``around`` (after it for step 1, before it for step -1), within its clause."""
    words: list[str] = []
    i = around + step
    while 0 <= i < len(chunks) and abs(i - around) <= size:
        if chunks[i].clause != chunks[around].clause or chunks[i].word in _PHRASE_STOP:
            break
        words.extend(_words(chunks[i].text))
        i += step
    return words


def _outcome_words(chunks: list[_Chunk]) -> list[str] | None:
    """Words naming the outcome: after a verb ("catch machine failures") or before a noun ("fraud
    detection", "churn model"); None when the text has neither kind of cue."""
    words: list[str] | None = None
    for i, chunk in enumerate(chunks):
        if _OUTCOME_CUE.fullmatch(chunk.word):
            words = (words or []) + _phrase(chunks, i, 1, 6)
        if chunk.word in _OUTCOME_NOUNS:
            words = (words or []) + _phrase(chunks, i, -1, 3)
    return words


def _content_stems(column: str) -> list[str]:
    return [_stem(w) for w in _words(column) if w not in _COLUMN_STOP]


def _coverage(column: str, stems: set[str]) -> tuple[int, int]:
    """(how many of the column's words the text covers, how many words it has)."""
    content = _content_stems(column)
    covered = sum(1 for c in content if len(c) >= 2 and any(_stem_match(c, s) for s in stems))
    return covered, len(content)


def _full_match(columns: Sequence[str], stems: set[str]) -> str | None:
    full = []
    for i, column in enumerate(columns):
        covered, n = _coverage(column, stems)
        if n and covered == n:
            full.append((-n, -i, column))
    return min(full)[2] if full else None


def _partial_match(columns: Sequence[str], stems: set[str]) -> str | None:
    scored = sorted(((_coverage(col, stems)[0], col) for col in columns), reverse=True)
    if not scored or scored[0][0] == 0 or (len(scored) > 1 and scored[1][0] == scored[0][0]):
        return None
    return scored[0][1]


def _literal_target(columns: Sequence[str]) -> str | None:
    by_norm = {normalise_column_name(column): column for column in columns}
    return next((by_norm[name] for name in _LITERAL_TARGETS if name in by_norm), None)


_SYNONYMS = {"leav": ("churn", "attrition"), "quit": ("churn", "attrition"), "cancel": ("churn",)}


def _outcome_stems(chunks: list[_Chunk]) -> tuple[set[str], bool]:
    """(stems of the words that may name the outcome, whether an outcome cue was found)."""
    outcome = _outcome_words(chunks)
    if outcome is None:  # no outcome verb: any word outside a "drop / using ..." clause may name it
        neg_clauses = {c.clause for c in chunks if c.word in _STRONG_NEG | _WEAK_NEG}
        stems = {_stem(w) for c in chunks if c.clause not in neg_clauses for w in _words(c.text)}
    else:
        stems = {_stem(w) for w in outcome}
    return stems | {s for stem in stems for s in _SYNONYMS.get(stem, ())}, outcome is not None


_NAMING_VERBS = {"predict", "predicting", "predicts", "forecast", "forecasting"}
_ARTICLES = {"the", "a", "an", "our", "their", "my"}


def _predicted_word(chunks: list[_Chunk]) -> str | None:
    """The one word after "predict" when nothing else follows in its phrase ("predict churn in x.csv"):
    a name, kept as written even when it is no column, so that the guardrails refuse it by name."""
    for i, chunk in enumerate(chunks):
        if chunk.word not in _NAMING_VERBS:
            continue
        j = i + 1
        while j < len(chunks) and chunks[j].clause == chunk.clause and chunks[j].word in _ARTICLES:
            j += 1
        if j >= len(chunks) or chunks[j].clause != chunk.clause:
            continue
        after = chunks[j + 1] if j + 1 < len(chunks) else None
        name = chunks[j].text.rstrip(".!?")
        alone = after is None or after.clause != chunk.clause or after.word in _PHRASE_STOP
        if alone and re.fullmatch(_IDENT, name) and name.lower() not in _NAME_STOP:
            return name
    return None


_IDENT = r"[A-Za-z_][\w.?-]*"
_NAME = rf"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\n]{{1,200}})(?P=q)|(?P<bv>{_IDENT}))"
_IDENT_LIKE = r"(?:[A-Za-z]\w*_\w+|[A-Za-z]+\d\w*|[a-z]+[A-Z]\w*)"
_NAMED_TARGETS = [re.compile(pattern, _I) for pattern in (
    rf"\b(?:target|label|outcome|response)(?:[\s_-]*(?:column|variable|col|field))?"
    rf"\s*(?:(?:is|will\s+be|should\s+be|named|called)\b|=|:)?\s*(?:the\s+)?(?:column\s+)?(?:named\s+|called\s+)?"
    rf"(?<![\w\"'`]){_NAME}",
    rf"\bcolumn\s+(?:named\s+|called\s+)?{_NAME}",
    rf"(?<![\w\"'`]){_NAME}\s+(?:column\b|(?:is|as)\s+(?:the\s+|our\s+)?(?:target|label|outcome)\b)",
)]
_PREDICT_NAME = re.compile(  # case-sensitive on purpose: an inner capital is what makes a name look like one
    rf"\b(?i:predict(?:ing|s)?\s+(?:the\s+)?)(?:(?P<q>[\"'`])(?P<qv>[^\"'`\n]{{1,200}})(?P=q)|(?P<bv>{_IDENT_LIKE}))"
)
_NAME_STOP = _LABEL_STOP | {"column", "variable", "col", "field", "named", "called", "will", "should", "target",
                            "label", "outcome", "predict", "here", "there", "we", "you", "i", "so", "then",
                            "whether", "if", "who", "whom", "whose", "how", "when", "where", "them", "those",
                            "these", "me", "us", "something", "everything", "anything"}


_PHRASE_END = re.compile(r"\s*(?:$|[,;.!?)]|(?:in|from|using|with|within|on|for|and|but)\b)", _I)


def _named_target(text: str, quoted_only: bool, patterns: Sequence[re.Pattern[str]] = (*_NAMED_TARGETS, _PREDICT_NAME),
                  alone: bool = False) -> str | None:
    """A target named in the text itself, as written (may be no column of the header). ``alone``: a bare
    name that ends the match must also end its phrase ("target: machine failure" names no one word)."""
    hits: list[tuple[int, str]] = []
    for pattern in patterns:
        for match in pattern.finditer(text):
            before = re.findall(r"[a-z']+", text[max(0, match.start() - 30):match.start()].lower())[-3:]
            if _STRONG_NEG & set(before):
                continue
            if match.group("qv") is not None:
                hits.append((match.start(), match.group("qv").strip()))
            elif not quoted_only:
                bare = match.group("bv").rstrip(".?!")
                if alone and match.end("bv") == match.end() and not _PHRASE_END.match(text, match.end()):
                    continue
                if bare and bare.lower() not in _NAME_STOP:
                    hits.append((match.start(), bare))
    hits = [hit for hit in hits if hit[1]]
    return min(hits)[1][:512] if hits else None


def _find_target(text: str, columns: Sequence[str] | None) -> tuple[str | None, str | None]:
    """(the target, how it was found); see the module docstring for the order of the rules.

    How: "named" (the text names it; it may be no column), "described" (every word of a column is
    in the text), or a guess poise must show the person: "literal" (a column called target, label,
    ...) or "partial" (the one column sharing most words with the outcome)."""
    if not columns:
        named = _named_target(text, quoted_only=False)
        return named, "named" if named else None
    chunks = _chunks(text)
    named = _explicit_column(chunks, columns) or _named_target(text, quoted_only=True)
    if named:
        return named, "named"
    stems, cued = _outcome_stems(chunks)
    described = _full_match(columns, stems)
    if described:
        return described, "described"
    literal = _literal_target(columns)  # beside a column called target, a feature mentioned in passing is no target
    named = ((None if literal else _sole_mention(chunks, columns)) or _predicted_word(chunks)
             or _named_target(text, quoted_only=False, patterns=_NAMED_TARGETS, alone=True))
    if named:
        return named, "named"
    if literal:
        return literal, "literal"
    partial = _partial_match(columns, stems)
    return partial, "partial" if partial else None


# ------------------------------------------------------------------ the public function


@dataclass(frozen=True)
class TaskReading:
    """What the rules read, and what they could not use: shown to the person, never silently dropped."""

    draft: TaskDraft
    target_found: str | None = None  # "named", "described", or a guess: "literal" / "partial"
    unread: tuple[str, ...] = ()  # numbers and durations of the text that no pass used, as written
    problems: tuple[str, ...] = ()  # values the text states that no task can take (a floor of 150%)

    @property
    def target_guessed(self) -> bool:
        return self.target_found in ("literal", "partial")


_LEFTOVER = re.compile(rf"{_NUM}(?:\s*(?:{_PERCENT_WORDS}))?{_END}(?:[\s-]*[^\W\d_]+)?", _I)


def _leftovers(text: str, columns: Sequence[str] | None) -> list[str]:
    """Numbers still in the masked text, with the word after each; names of columns do not count."""
    for column in columns or ():
        if re.search(r"\d", column):
            text = re.sub(re.escape(column), lambda m: _MASK * len(m.group()), text, flags=_I)
    return [match.group().strip() for match in _LEFTOVER.finditer(text)]


def read_task(text: str, columns: Sequence[str] | None = None, data: str | None = None) -> TaskReading:
    """Read a task described in plain words; what the text does not say stays None in the draft.

    ``columns`` is the real header of the table when known: the target is then returned exactly
    as spelled there. ``data`` is a path given separately (``--data``) and wins over a path in
    the text. Pure string processing: nothing in ``text`` or ``columns`` is executed.
    """
    columns = [str(column) for column in columns or () if 0 < len(str(column)) <= 512] or None
    text = _clean(text)
    path, text = _take_path(text)
    seed, text = _take_seed(text)
    named, beta, other_metrics, metric_problems, text = _take_metric_names(text)
    objective, lean = _objective(text), _lean(text)
    floors, floor_problems, text = _take_floors(text)
    budget, unused_durations, budget_problems, text = _take_budget(text)
    label, where_target, text = _take_label(text, columns)
    target, found = (where_target, "named") if where_target else _find_target(text, columns)
    metric, lean_beta = _choose_metric(named, floors, objective, lean)
    first = {kind: next((f for f in floors if f.kind == kind), None) for kind in ("precision", "recall")}
    draft = TaskDraft(
        data=(data or path or None),
        target=target,
        positive_label=_as_label(label) if label is not None else None,
        metric=metric,
        min_precision=first["precision"].value if first["precision"] else None,
        min_recall=first["recall"].value if first["recall"] else None,
        beta=beta if beta is not None else lean_beta,
        budget_seconds=budget,
        seed=seed,
    )
    unread = [f.words for f in floors if f is not first[f.kind]] + other_metrics + unused_durations \
        + _leftovers(text, columns)
    problems = metric_problems + floor_problems + budget_problems
    return TaskReading(draft, found if target else None, tuple(unread), tuple(problems))


def parse_task(text: str, columns: Sequence[str] | None = None, data: str | None = None) -> TaskDraft:
    """The draft of :func:`read_task`: what the text says, each field None where it says nothing."""
    return read_task(text, columns, data).draft
