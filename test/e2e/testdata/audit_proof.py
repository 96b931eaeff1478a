#!/usr/bin/python3
"""An independent checker of udfhost audit proofs (docs/AUDIT.md), using
only the Python standard library: hashlib and base64.

  audit_proof.py FILE   (an `udfhost audit prove` JSON document)

Inclusion: the record's own hash-chain seal, its RFC 6962 leaf hash, and
the inclusion proof against the root hash in the checkpoint's body (RFC
9162 2.1.3.2). Consistency: the proof between the two checkpoints' roots
(RFC 9162 2.1.4.2). The checkpoint signatures are Ed25519, which the
standard library lacks: this script checks the Merkle proofs against the
roots the checkpoints state; `udfhost audit verify-proof --pubkey` (or any
C2SP signed-note verifier) checks the signatures.
Prints "ok: ..." and exits 0, or prints why not and exits 1.
"""
import base64
import hashlib
import json
import sys


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def checkpoint(note):
    text, _, sigs = note.rpartition("\n\n")
    lines = text.split("\n")
    if len(lines) < 3 or not sigs.startswith("\u2014 "):
        raise ValueError("not a signed checkpoint note")
    return lines[0], int(lines[1]), base64.b64decode(lines[2], validate=True)


def inclusion(p):
    line = p["record"]
    rec = json.loads(line)
    suffix = ',"hash":"%s"}' % rec["hash"]
    if not line.endswith(suffix):
        raise ValueError("record does not end in its hash field")
    body = line[: -len(suffix)] + "}"
    if hashlib.sha256(body.encode()).hexdigest() != rec["hash"]:
        raise ValueError("record's hash does not match its content")
    if rec["seq"] != p["seq"] or p["leaf_index"] != p["seq"] - 1:
        raise ValueError("seq and leaf_index disagree")
    origin, size, root = checkpoint(p["checkpoint"])
    if size != p["tree_size"]:
        raise ValueError("tree_size is not the checkpoint's size")
    r = hashlib.sha256(b"\x00" + line.encode()).digest()
    fn, sn = p["leaf_index"], size - 1
    if fn > sn:
        raise ValueError("leaf index beyond the tree")
    for h in p["proof"]:
        h = base64.b64decode(h, validate=True)
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            r = node(h, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, h)
        fn >>= 1
        sn >>= 1
    if sn != 0 or r != root:
        raise ValueError("record %d is not in the tree of the checkpoint" % p["seq"])
    return "record %d is leaf %d of %s's tree of %d records" % (p["seq"], p["leaf_index"], origin, size)


def consistency(p):
    origin, first, first_root = checkpoint(p["old_checkpoint"])
    _, second, second_root = checkpoint(p["new_checkpoint"])
    if (first, second) != (p["old_size"], p["new_size"]) or not 0 < first <= second:
        raise ValueError("sizes disagree with the checkpoints")
    path = [base64.b64decode(h, validate=True) for h in p["proof"]]
    if first == second:
        if path or first_root != second_root:
            raise ValueError("equal sizes but different roots")
        return "trees of %d records are the same" % first
    if first & (first - 1) == 0:
        path = [first_root] + path
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ValueError("proof too long")
        if fn & 1 or fn == sn:
            fr, sr = node(c, fr), node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ValueError("the tree of %d records does not extend the tree of %d" % (second, first))
    return "%s's tree of %d records extends its tree of %d" % (origin, second, first)


def main():
    with open(sys.argv[1]) as f:
        p = json.load(f)
    kinds = {"udfhost.audit.inclusion/v1": inclusion, "udfhost.audit.consistency/v1": consistency}
    try:
        print("ok: " + kinds[p["type"]](p))
    except (KeyError, ValueError) as e:
        print("NOT ok: %s" % e)
        sys.exit(1)


main()
