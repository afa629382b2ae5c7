"""Writes predictions-scored.jsonl: predictions.jsonl with illustrative scores.

Each mention's score is drawn from a hash of its query id and text, higher for
a mention in the gold answer (0.45 to 0.99) than for one that is not (0.15 to
0.55); an answer "[]" gets an empty_score of 0.60 to 0.99. The scores are
made up, to show the sweep and the plot; they are not a real model's.
"""
import hashlib
import json
import re


def unit(*parts):
    h = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


gold = {}
for q in json.load(open("crossner_ai_sample.json")):
    m = re.match(r"\[(.*?)\]", q["conversations"][-1]["value"])
    gold[q["id"]] = {g.lower() for g in json.loads(m.group(0))} if m else set()

with open("predictions.jsonl") as src, open("predictions-scored.jsonl", "w") as dst:
    for line in src:
        rec = json.loads(line)
        out = rec["output"]
        items = json.loads(out[out.index("["):out.index("]") + 1])
        if items:
            rec["scores"] = {}
            for it in items:
                u = unit(rec["id"], it)
                hit = it.lower() in gold[rec["id"]]
                rec["scores"][it] = round(0.45 + 0.54 * u if hit else 0.15 + 0.40 * u, 4)
        else:
            rec["empty_score"] = round(0.60 + 0.39 * unit(rec["id"]), 4)
        dst.write(json.dumps(rec, ensure_ascii=False) + "\n")
