#!/usr/bin/env python3
"""Make (or check) the golden vectors of UniNER's official evaluator.

The files beside this script hold what UniNER's official evaluation code
gives on a set of inputs; the Go reimplementation in eval/ is tested
against them (see README.md here). This script reproduces that code's
behaviour, function by function, with the Python standard library only:

  - cases.jsonl: the inputs of each line (name, gold, pred) are kept; the
    derived fields (gold_items, pred_items, correct, predicted,
    gold_count) are computed again.
  - cases_expected.json: the totals of cases.jsonl and the precision,
    recall and f1 that the official evaluator gives for all its cases.
  - uniner_expected.json: per UniNER zero-shot test set, the counts and
    figures of the official evaluator for the perturbed predictions that
    `perturb` in eval/uniner_data_test.go makes. Go writes them:

        NERSTREAM_WRITE_PERTURBED=/tmp/perturbed \\
            go test ./eval -run TestWritePerturbedPredictions

    and --perturbed names that folder, --data the test sets' folder.
    Without --perturbed, uniner_expected.json is left alone (not checked).

With --check nothing is written: each file is compared with what the
script would write, and the script exits with status 1 on a difference.

The official code is github.com/universal-ner/universal-ner at commit
4e454fec20dae255675d64b7144d0c56b3caeb17 (MIT licence): parser,
normalize_answer and NEREvaluator in src/eval/evaluate.py, get_response in
src/utils.py. Run it with Python 3.11, as the files were made: str.lower,
str.split and the re module's word boundaries follow the Unicode tables of
the Python that runs it.
"""

import argparse
import difflib
import json
import os
import re
import string
import sys

OFFICIAL_COMMIT = "4e454fec20dae255675d64b7144d0c56b3caeb17"

HERE = os.path.dirname(os.path.abspath(__file__))

# The six zero-shot test sets, in the order of uniner_expected.json (and of
# uninerDataFiles in eval/uniner_data_test.go).
UNINER_SETS = [
    "CrossNER_AI",
    "CrossNER_literature",
    "CrossNER_music",
    "CrossNER_politics",
    "CrossNER_science",
    "mit-restaurant",
]

# The fields of a cases.jsonl line, in order: the inputs, then the derived.
CASE_INPUTS = ("name", "gold", "pred")

# ASCII punctuation, as string.punctuation lists it.
_PUNCTUATION = frozenset(string.punctuation)
# A whole word "a", "an" or "the" (str pattern: Unicode word boundaries).
_ARTICLE = re.compile(r"\b(?:a|an|the)\b")
# The answer's leading list: "[" at the very start, then the shortest run of
# characters other than a newline up to the first "]".
_LEADING_LIST = re.compile(r"\[.*?\]")


def normalize(value):
    """Reproduces normalize_answer (src/eval/evaluate.py @ 4e454fec).

    In order: lower case (str.lower, so the final-sigma and dotted-I rules
    of Unicode apply); drop every character of string.punctuation; put a
    space where a whole word a/an/the stood; split on white space
    (str.split: Unicode white space and the separators U+001C..U+001F) and
    join with single spaces. A value that is not a str has no .lower and
    raises AttributeError, which the caller turns into an empty list.
    """
    text = value.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLE.sub(" ", text)
    return " ".join(text.split())


def parse_answer(text):
    """Reproduces parser (src/eval/evaluate.py @ 4e454fec).

    The list is the leading match of _LEADING_LIST (re.match, so only at
    the start; none found reads as "[]"), decoded with json.loads. Each
    element is normalized; an element that is a list (or tuple) becomes the
    tuple of its normalized elements. Repeats are dropped, the first one
    kept, by list membership (==), so order is kept. Any exception on the
    way (no str, bad JSON, an element that cannot be normalized, a value
    that cannot be iterated) gives [] for the whole answer.
    """
    try:
        found = _LEADING_LIST.match(text)
        items = json.loads(found.group(0) if found else "[]")
        kept = []
        for element in items:
            if isinstance(element, (list, tuple)):
                element = tuple(normalize(part) for part in element)
            else:
                element = normalize(element)
            if element not in kept:
                kept.append(element)
        return kept
    except Exception:  # the official code swallows every error alike
        return []


def strip_responses(outputs):
    """Reproduces get_response (src/utils.py @ 4e454fec).

    Each output keeps only what follows its last "ASSISTANT:" (all of it
    when there is none), with white space stripped at both ends
    (str.strip).
    """
    return [out.split("ASSISTANT:")[-1].strip() for out in outputs]


def match_counts(pred_items, gold_items):
    """The per-query counting of NEREvaluator.evaluate
    (src/eval/evaluate.py @ 4e454fec): every predicted item counts as
    predicted, and as correct when it is in the gold items (list
    membership); every gold item counts as gold. Returns (correct,
    predicted, gold)."""
    correct = sum(1 for item in pred_items if item in gold_items)
    return correct, len(pred_items), len(gold_items)


def score(preds, golds):
    """Reproduces NEREvaluator.evaluate (src/eval/evaluate.py @ 4e454fec).

    Pairs preds with golds as zip does (the shorter list wins), parses both
    sides with parse_answer and sums the counts of match_counts over all
    pairs. Precision, recall and f1 are smoothed with 1e-10 in each
    denominator, in the official order of operations (2 * p * r is
    (2 * p) * r). Returns the three counts and the three floats.
    """
    correct = predicted = gold = 0
    for pred, ref in zip(preds, golds):
        c, p, g = match_counts(parse_answer(pred), parse_answer(ref))
        correct += c
        predicted += p
        gold += g
    precision = correct / (predicted + 1e-10)
    recall = correct / (gold + 1e-10)
    f1 = 2 * precision * recall / (precision + recall + 1e-10)
    return {
        "correct": correct,
        "predicted": predicted,
        "gold": gold,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def pretty(obj):
    """The JSON of the *_expected.json files: json.dumps with indent 2
    (ASCII, floats as repr), then a newline."""
    return json.dumps(obj, indent=2) + "\n"


def make_cases(path):
    """Reads the inputs of cases.jsonl and returns the text of cases.jsonl
    and of cases_expected.json."""
    lines = []
    preds, golds = [], []
    with open(path, encoding="ascii") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            case = json.loads(line)
            missing = [k for k in CASE_INPUTS if not isinstance(case.get(k), str)]
            if missing:
                raise SystemExit(f"{path}:{number}: no string field {missing}")
            gold_items = parse_answer(case["gold"])
            # get_response is applied to the prediction only.
            pred_items = parse_answer(strip_responses([case["pred"]])[0])
            correct, predicted, gold_count = match_counts(pred_items, gold_items)
            record = {k: case[k] for k in CASE_INPUTS}
            record.update(
                gold_items=gold_items,
                pred_items=pred_items,
                correct=correct,
                predicted=predicted,
                gold_count=gold_count,
            )
            lines.append(json.dumps(record, ensure_ascii=True) + "\n")
            preds.append(case["pred"])
            golds.append(case["gold"])
    return "".join(lines), pretty(score(strip_responses(preds), golds))


def make_uniner(data_dir, perturbed_dir):
    """Scores each test set's perturbed predictions against its golds (the
    last turn of each record) and returns the text of uniner_expected.json."""
    results = {}
    for name in UNINER_SETS:
        with open(os.path.join(data_dir, name + ".json"), encoding="utf-8") as f:
            records = json.load(f)
        golds = [record["conversations"][-1]["value"] for record in records]
        outputs = []
        pred_path = os.path.join(perturbed_dir, name + ".jsonl")
        with open(pred_path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    outputs.append(json.loads(line))
        # The predictions are in the test set's order, one per record.
        if [o["id"] for o in outputs] != [r["id"] for r in records]:
            raise SystemExit(f"{pred_path}: the ids are not those of {name}.json in order")
        results[name] = score(strip_responses([o["output"] for o in outputs]), golds)
    return pretty(results)


def settle(path, text, check):
    """Writes text to path, or with check compares them. Returns whether
    the file holds text."""
    if not check:
        with open(path, "w", encoding="ascii", newline="") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(path)}")
        return True
    try:
        with open(path, encoding="ascii", newline="") as f:
            have = f.read()
    except (OSError, UnicodeDecodeError) as err:
        print(f"{path}: {err}", file=sys.stderr)
        return False
    if have == text:
        print(f"{os.path.relpath(path)}: same")
        return True
    diff = difflib.unified_diff(
        have.splitlines(True), text.splitlines(True),
        fromfile=path + " (committed)", tofile=path + " (official logic)", n=1)
    sys.stderr.write(f"{path} differs from what the official logic gives:\n")
    sys.stderr.writelines(list(diff)[:40])
    return False


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="compare the files with what the official logic gives; exit 1 on a difference")
    ap.add_argument("--dir", default=HERE,
                    help="the folder of the golden files (default: this script's)")
    ap.add_argument("--perturbed", metavar="DIR",
                    help="the perturbed predictions, NAME.jsonl per test set, from TestWritePerturbedPredictions; "
                         "without it uniner_expected.json is left alone")
    ap.add_argument("--data", metavar="DIR",
                    default=os.path.join(HERE, "..", "..", "..", "..", "shared", "data", "uniner"),
                    help="UniNER's zero-shot test sets (default: shared/data/uniner beside the checkout)")
    args = ap.parse_args(argv)

    ok = True
    cases, expected = make_cases(os.path.join(args.dir, "cases.jsonl"))
    ok &= settle(os.path.join(args.dir, "cases.jsonl"), cases, args.check)
    ok &= settle(os.path.join(args.dir, "cases_expected.json"), expected, args.check)
    if args.perturbed:
        uniner = make_uniner(args.data, args.perturbed)
        ok &= settle(os.path.join(args.dir, "uniner_expected.json"), uniner, args.check)
    else:
        print("uniner_expected.json: skipped (no --perturbed)")
    if not ok and sys.version_info[:2] != (3, 11):
        print(f"note: this is Python {sys.version.split()[0]}; the goldens were made with 3.11, "
              "whose Unicode tables str.lower and str.split follow", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
