"""Which keys vouch for a snapshot, and the verification outcome (docs/design.md section 3).

Pure: the caller gathers the keys (node, catalog, command line, revoked) and the artifact
hashes it actually read; this module decides the outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from snapshot.errors import VerificationError
from snapshot.keys import key_id
from snapshot.manifest import Manifest

SELF_DECLARED_NOTICE = (
    "NOTICE: only the manifest's self-declared key vouches for this snapshot; "
    "pass --trusted-keys or --trusted-key to check it against keys you trust"
)


@dataclass(frozen=True)
class TrustPolicy:
    node_keys: tuple[bytes, ...] = ()
    catalog_keys: tuple[bytes, ...] = ()
    strict_keys: tuple[bytes, ...] | None = None  # set: strict mode, only these
    revoked: frozenset[bytes] = frozenset()
    forced: bool = False

    @property
    def mode(self) -> str:
        if self.forced:
            return "forced"
        return "strict" if self.strict_keys is not None else "default"


@dataclass
class VerifyResult:
    outcome: str
    mode: str
    snapshot_id: str | None
    node_id: str | None
    signer_key_id: str | None
    trusted_by: str | None
    detail: str
    notices: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "mode": self.mode,
            "snapshot_id": self.snapshot_id,
            "node_id": self.node_id,
            "signer_key_id": self.signer_key_id,
            "trusted_by": self.trusted_by,
            "detail": self.detail,
        }

    def line(self) -> str:
        if self.ok:
            return (
                "OK: sha256 checksums valid, signature verified "
                f"(key: {self.node_id}, key id {self.signer_key_id})"
            )
        return f"FAIL: {self.outcome}: {self.detail}"


def failed(
    error: VerificationError, policy: TrustPolicy, manifest: Manifest | None
) -> VerifyResult:
    return VerifyResult(
        outcome=error.outcome,
        mode=policy.mode,
        snapshot_id=manifest.snapshot_id if manifest else error.snapshot_id,
        node_id=manifest.node_id if manifest else None,
        signer_key_id=manifest.key_id if manifest else None,
        trusted_by=None,
        detail=error.detail,
    )


def evaluate(manifest: Manifest, actual: dict[str, str], policy: TrustPolicy) -> VerifyResult:
    """Outcome for ``manifest`` given the artifact digests actually read (member -> sha256:)."""

    def result(outcome: str, detail: str, trusted_by: str | None = None) -> VerifyResult:
        return VerifyResult(
            outcome=outcome,
            mode=policy.mode,
            snapshot_id=manifest.snapshot_id,
            node_id=manifest.node_id,
            signer_key_id=manifest.key_id,
            trusted_by=trusted_by,
            detail=detail,
        )

    for member, declared in sorted(manifest.artifacts.items()):
        got = actual.get(member)
        if got is None:
            return result("checksum_error", f"{member} is missing")
        if got != declared:
            return result("checksum_error", f"{member} has {got}, manifest says {declared}")
    if not manifest.signature_valid():
        return result("signature_mismatch", f"signature does not match key id {manifest.key_id}")
    signer = manifest.signer_pubkey
    kid = key_id(signer)
    if signer in policy.revoked:
        return result("untrusted_key", f"key id {kid} is revoked")
    if policy.strict_keys is not None:
        if signer in policy.strict_keys:
            return result("ok", "signed by a key from --trusted-keys", "trusted-keys")
        return result("untrusted_key", f"key id {kid} is not among the trusted keys given")
    if signer in policy.node_keys:
        return result("ok", "signed by this node's key", "node")
    if signer in policy.catalog_keys:
        return result("ok", "signed by a key trusted in the catalog", "catalog")
    verdict = result("ok", "signed only by the manifest's self-declared key", "self-declared")
    verdict.notices.append(SELF_DECLARED_NOTICE)
    return verdict
