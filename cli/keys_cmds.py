"""``stigmem keys ...``: generate, trust, revoke, list."""

from __future__ import annotations

from pathlib import Path

import click

from cli.app import App

pass_app = click.make_pass_decorator(App)


@click.group("keys")
def keys_group() -> None:
    """Signing keys and the keys this catalog trusts."""


def _write_key_file(out: Path, text: str) -> None:
    from snapshot.errors import StigmemError
    from snapshot.fileio import atomic_write_bytes

    if out.is_dir():
        raise StigmemError(f"--out is a directory: {out}")
    if out.exists():
        raise StigmemError(f"refusing to overwrite existing key file: {out}")
    if not out.parent.is_dir():
        raise StigmemError(f"no such directory for --out: {out.parent}")
    atomic_write_bytes(out, text.encode(), 0o600)


def _generate_store_key(kind: str, out: Path, as_json: bool) -> None:
    from cli.output import emit_json
    from store import crypto

    doc: dict[str, str]
    if kind == "store":
        store_key = crypto.StoreKey.generate()
        _write_key_file(out, store_key.to_text())
        doc = {"pub": crypto.b64(store_key.public), "key_id": store_key.key_id, "out": str(out)}
    else:
        writer = crypto.WriterKey.generate()
        _write_key_file(out, writer.to_text())
        doc = {"key_id": writer.key_id, "out": str(out)}
    if as_json:
        emit_json(doc)
        return
    if "pub" in doc:
        click.echo(f"pub: {doc['pub']}")
    click.echo(f"key id: {doc['key_id']}")


@keys_group.command(
    "generate",
    epilog="""\b
Examples:
  stigmem keys generate --out /etc/stigmem/node.key
  stigmem keys generate            # prints priv: and pub: like the runbook's snippet""",
)
@click.option("--out", type=click.Path(path_type=Path), help="Write the private key here (0600).")
@click.option("--store", "kind", flag_value="store", help="A store key (X25519) instead.")
@click.option("--writer", "kind", flag_value="writer", help="A store's writer key instead.")
@click.option("--json", "as_json", is_flag=True)
def generate_cmd(out: Path | None, kind: str | None, as_json: bool) -> None:
    """Generate an Ed25519 signing key pair, or with --store / --writer a store's keys."""
    from cli.output import emit_json, note
    from snapshot.errors import UsageError
    from snapshot.keys import b64url_encode, generate, key_id, public_key_bytes, seed_bytes

    if kind is not None:
        if out is None:
            raise UsageError(f"keys generate --{kind} needs --out FILE: the key is a secret")
        _generate_store_key(kind, out, as_json)
        return
    private = generate()
    pub = public_key_bytes(private)
    priv_text = b64url_encode(seed_bytes(private))
    doc = {"pub": b64url_encode(pub), "key_id": key_id(pub)}
    if out is not None:
        _write_key_file(out, priv_text + "\n")
        doc["out"] = str(out)
        if as_json:
            emit_json(doc)
            return
        click.echo(f"pub: {doc['pub']}")
        click.echo(f"key id: {doc['key_id']}")
        return
    if as_json:
        emit_json({"priv": priv_text, **doc})
    else:
        click.echo(f"priv: {priv_text}")
        click.echo(f"pub: {doc['pub']}")
        click.echo(f"key id: {doc['key_id']}")
    note("note: a private key was printed; keep it secret (use --out to write it to a 0600 file)")


@keys_group.command(
    "trust",
    epilog="""\b
Examples:
  stigmem keys trust Xk3...base64url... --label node-a""",
)
@click.argument("key")
@click.option("--label", help="A name for the key (usable as --signer in snapshot list).")
@click.pass_obj
def trust_cmd(app: App, key: str, label: str | None) -> None:
    """Trust a public key for default-mode verification."""
    from snapshot.keys import b64url_encode, key_id, parse_public_key

    raw = parse_public_key(key, "KEY")
    catalog = app.catalog()
    catalog.trust_key(b64url_encode(raw), key_id(raw), label)
    click.echo(f"trusted key id {key_id(raw)}")


@keys_group.command(
    "revoke",
    epilog="""\b
Examples:
  stigmem keys revoke 0123456789abcdef
  stigmem keys revoke node-a""",
)
@click.argument("key")
@click.pass_obj
def revoke_cmd(app: App, key: str) -> None:
    """Revoke a key (by key id, public key or label): its signatures never verify again."""
    catalog = app.catalog()
    row = catalog.revoke_key(key)
    click.echo(f"revoked key id {row.key_id}")


@keys_group.command("list", epilog="Examples:\n\n  stigmem keys list --json")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def list_cmd(app: App, as_json: bool) -> None:
    """Keys seen or trusted, with their key ids."""
    from cli.output import emit_json, table

    rows = app.catalog().keys()
    if as_json:
        emit_json([row.to_json() for row in rows])
        return
    table(
        ["key id", "label", "trusted", "revoked", "first seen", "public key"],
        [
            [
                r.key_id,
                r.label or "",
                "yes" if r.trusted else "no",
                "REVOKED" if r.revoked else "",
                r.first_seen.isoformat() if r.first_seen else "",
                r.public_key,
            ]
            for r in rows
        ],
    )
