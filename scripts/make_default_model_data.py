#!/usr/bin/env python3
"""Build the training set of the shipped blood-cell model: BCCD + TXL-PBC, no test leakage.

    python3 scripts/make_default_model_data.py ../shared/data runs/default-model-data [BCCD_WEIGHT]

Writes a Pascal VOC folder (Annotations/ and JPEGImages/ hold symbolic links to the two
datasets' files; ImageSets/Main/{train,val}.txt list the ids) and `provenance.csv` (one row per
image: id, split, dataset, reason kept). Rules, so that neither dataset's test split is seen in
training or model selection:

* BCCD images keep BCCD's own annotations. TXL-PBC holds 160 BCCD images, re-annotated; those
  copies are left out (one copy of each photograph, BCCD's labels, so the BCCD test metric
  scores the labelling the model was taught).
* A BCCD train/val image whose TXL-PBC copy is in TXL-PBC's *test* split is left out, so the
  TXL-PBC test split holds no photograph the model was trained or selected on.
* BCCD's test split and TXL-PBC's test split are not used at all.
* TXL-PBC's other sources (BCDD, PBC, Raabin-WBC) keep their train/val split.

BCCD_WEIGHT (default 2) lists each BCCD training id that many times in train.txt: BCCD's dense
640x480 fields are what labs photograph, while most TXL-PBC images are single-WBC crops, and
without it BCCD would be a fifth of the training draws. val.txt lists each id once.

The class names are the same in both datasets (WBC, RBC, Platelets). Standard library only.
"""
import csv
import os
import sys


def read_ids(path):
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    data, out = sys.argv[1], sys.argv[2]
    bccd_weight = int(sys.argv[3]) if len(sys.argv) == 4 else 2
    if bccd_weight < 1:
        sys.exit("error: BCCD_WEIGHT must be at least 1")
    bccd = os.path.join(data, "bccd")
    txl = os.path.join(data, "txl-pbc")
    for d in (bccd, txl):
        if not os.path.isdir(d):
            sys.exit(f"error: {d} is not a folder")

    # TXL-PBC provenance: id -> (split, source, original file name).
    with open(os.path.join(txl, "source_map.csv")) as f:
        rows = list(csv.DictReader(f))
    bccd_in_txl_test = {
        os.path.splitext(r["original_name"])[0]
        for r in rows
        if r["source_dataset"] == "BCCD" and r["split"] == "test"
    }
    txl_source = {r["id"]: r["source_dataset"] for r in rows}

    chosen = {"train": [], "val": []}  # (id, dataset folder, reason)
    dropped = []
    for split in ("train", "val"):
        for i in read_ids(os.path.join(bccd, "ImageSets/Main", f"{split}.txt")):
            if i in bccd_in_txl_test:
                dropped.append((i, split, "bccd", "its TXL-PBC copy is in TXL-PBC test"))
            else:
                chosen[split].append((i, bccd, "bccd"))
        for i in read_ids(os.path.join(txl, "ImageSets/Main", f"{split}.txt")):
            source = txl_source.get(i)
            if source is None:
                sys.exit(f"error: {i} of TXL-PBC {split}.txt is not in source_map.csv")
            if source == "BCCD":
                dropped.append((i, split, "txl-pbc", "a BCCD photograph (BCCD's copy is used)"))
            else:
                chosen[split].append((i, txl, f"txl-pbc/{source}"))

    os.makedirs(os.path.join(out, "Annotations"), exist_ok=True)
    os.makedirs(os.path.join(out, "JPEGImages"), exist_ok=True)
    os.makedirs(os.path.join(out, "ImageSets/Main"), exist_ok=True)
    files = {}
    for d in (bccd, txl):
        for name in os.listdir(os.path.join(d, "JPEGImages")):
            files.setdefault(os.path.splitext(name)[0], []).append((d, name))

    def link(src, dst):
        src = os.path.abspath(src)
        if os.path.lexists(dst):
            os.remove(dst)
        os.symlink(src, dst)

    for split, items in chosen.items():
        with open(os.path.join(out, "ImageSets/Main", f"{split}.txt"), "w") as f:
            for i, d, source in items:
                repeat = bccd_weight if (split == "train" and source == "bccd") else 1
                f.write((i + "\n") * repeat)
                link(os.path.join(d, "Annotations", i + ".xml"),
                     os.path.join(out, "Annotations", i + ".xml"))
                for src_dir, name in files.get(i, []):
                    if src_dir == d:
                        link(os.path.join(d, "JPEGImages", name),
                             os.path.join(out, "JPEGImages", name))
    with open(os.path.join(out, "provenance.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "split", "from", "kept", "reason"])
        for split, items in chosen.items():
            for i, _, source in items:
                w.writerow([i, split, source, "yes", ""])
        for i, split, source, reason in dropped:
            w.writerow([i, split, source, "no", reason])
    for split, items in chosen.items():
        counts = {}
        for _, _, source in items:
            counts[source] = counts.get(source, 0) + 1
        print(f"{split}: {len(items)} images {dict(sorted(counts.items()))}")
    print(f"left out: {len(dropped)} (see {out}/provenance.csv)")


if __name__ == "__main__":
    main()
