"""Pack format: frames with and without a dictionary, decoded by any reader."""

from __future__ import annotations

import hashlib
import random

import pytest
import zstandard

from store import packs


def pages(count: int, seed: int) -> list[bytes]:
    """Pages alike in structure, different in content: what a dictionary learns from."""
    rng = random.Random(seed)
    words = [f"w{n:03d}".encode() for n in range(300)]
    out = []
    for n in range(count):
        body = b" ".join(rng.choice(words) for _ in range(600))
        out.append((b"\x0d\x00\x00\x00" + n.to_bytes(4, "big") + body)[:4096].ljust(4096, b"\0"))
    return out


def trained(seed: int) -> bytes:
    samples: list[bytes | bytearray | memoryview] = list(pages(400, seed))
    return bytes(zstandard.train_dictionary(16 << 10, samples, k=64, d=8).as_bytes())


def dict_id(dictionary: bytes) -> int:
    return int(zstandard.ZstdCompressionDict(dictionary).dict_id())


def written(chunks: list[bytes], dictionary: bytes | None) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    writer = packs.PackWriter(
        lambda name, data, _: out.append((name, bytes(data))), 3, 16 << 10, 1 << 30, dictionary
    )
    for chunk in chunks:
        writer.add(hashlib.sha256(chunk).digest(), chunk)
    writer.finish()
    return out


def read_back(pack: bytes, decoder: packs.FrameDecoder, name: str = "p") -> list[bytes]:
    got = []
    for e in packs.entries_of(pack):
        plain = decoder.decompress(name, pack[e.frame_offset : e.frame_offset + e.frame_length])
        got.append(plain[e.offset : e.offset + e.length])
    return got


@pytest.mark.parametrize("with_dictionary", [True, False])
def test_a_pack_lists_and_returns_its_chunks(with_dictionary: bool) -> None:
    chunks = pages(50, 1)
    dictionary = trained(1) if with_dictionary else None
    [(name, pack)] = written(chunks, dictionary)
    assert name == hashlib.sha256(pack).hexdigest()
    assert read_back(pack, packs.in_memory(pack)) == chunks
    entries = packs.entries_of(pack)
    frames = {(e.frame_offset, e.frame_length) for e in entries}
    # One frame per chunk with a dictionary; 16 KiB frames of 4 pages without.
    assert len(frames) == (50 if with_dictionary else 13)
    assert (packs.dictionary_length(pack) is not None) == with_dictionary


def test_a_dictionary_keeps_separate_pages_as_small_as_pages_compressed_together() -> None:
    chunks = pages(400, 2)
    [(_, together)] = written(chunks, None)
    [(_, apart)] = written(chunks, trained(3))  # trained on other pages of the same kind
    assert len(apart) < 1.1 * len(together)


def test_a_frame_is_decoded_with_the_dictionary_it_names_loaded_once() -> None:
    first, second = trained(4), trained(5)
    assert dict_id(first) != dict_id(second)
    made = {
        "a": written(pages(20, 6), first)[0][1],
        "b": written(pages(20, 7), second)[0][1],
        "c": written(pages(20, 8), first)[0][1],
    }
    loads: list[str] = []

    def load(name: str) -> bytes:
        loads.append(name)
        return packs.dictionary_in(made[name])

    decoder = packs.FrameDecoder(load)
    for name, pack in made.items():
        assert read_back(pack, decoder, name) == read_back(pack, packs.in_memory(pack))
    assert loads == ["a", "b"]  # "c" uses the dictionary "a" supplied


def test_two_dictionaries_with_one_id_each_decode_their_own_pack() -> None:
    first, second = trained(9), trained(10)
    # zstd derives ids from content; force a clash (the id is bytes 4-8 of the dictionary).
    clash = second[:4] + first[4:8] + second[8:]
    assert dict_id(clash) == dict_id(first)
    made = {"a": written(pages(20, 11), first)[0][1], "b": written(pages(20, 12), clash)[0][1]}
    decoder = packs.FrameDecoder(lambda name: packs.dictionary_in(made[name]))
    assert read_back(made["a"], decoder, "a") == pages(20, 11)
    assert read_back(made["b"], decoder, "b") == pages(20, 12)


def test_a_damaged_dictionary_fails_the_frames_of_its_pack_only() -> None:
    dictionary = trained(13)
    good = written(pages(10, 14), dictionary)[0][1]
    bad = bytearray(written(pages(10, 15), dictionary)[0][1])
    bad[packs.HEADER.size + 40] ^= 0x01
    made = {"good": good, "bad": bytes(bad)}
    loads: list[str] = []

    def load(name: str) -> bytes:
        loads.append(name)
        return packs.dictionary_in(made[name])

    decoder = packs.FrameDecoder(load)
    entries = packs.entries_of(made["bad"])
    assert entries[0].frame_offset >= packs.HEADER.size
    for e in entries:
        frame = made["bad"][e.frame_offset : e.frame_offset + e.frame_length]
        with pytest.raises(packs.PackError, match="does not decompress"):
            decoder.decompress("bad", frame)
    assert loads == ["bad"]  # read once, not once a frame
    assert read_back(good, decoder, "good") == pages(10, 14)


def test_a_pack_without_its_dictionary_is_named_damaged() -> None:
    pack = written(pages(10, 16), trained(16))[0][1]
    end = packs.dictionary_length(pack)
    assert end is not None
    with pytest.raises(packs.PackError, match="truncated"):
        packs.dictionary_in(pack[: end - 1])
    with pytest.raises(packs.PackError, match="holds none"):
        packs.dictionary_in(pack[end:])


@pytest.mark.parametrize("with_dictionary", [True, False])
def test_frames_decoded_together_fail_alone(with_dictionary: bool) -> None:
    chunks = pages(600, 17)  # 2.4 MiB: several batches of about 1 MiB
    dictionary = trained(17) if with_dictionary else None
    pack = bytearray(written(chunks, dictionary)[0][1])
    entries = packs.entries_of(bytes(pack))
    frames = sorted({(e.frame_offset, e.frame_length) for e in entries})
    plain = b"".join(chunks)
    decoder = packs.in_memory(bytes(pack))
    assert b"".join(bytes(p) for p in decoder.decompress_many("p", pack, frames)) == plain  # type: ignore[arg-type]

    offset, length = frames[len(frames) // 2]
    pack[offset + length // 2] ^= 0x01
    got = list(packs.in_memory(bytes(pack)).decompress_many("p", bytes(pack), frames))
    failed = [n for n, p in enumerate(got) if isinstance(p, packs.PackError)]
    assert failed == [len(frames) // 2]
    good = [bytes(p) for p in got if not isinstance(p, packs.PackError)]
    size = len(plain) // len(frames)
    assert b"".join(good) == plain[: size * failed[0]] + plain[size * (failed[0] + 1) :]


@pytest.mark.parametrize("with_dictionary", [True, False])
def test_a_frame_header_claiming_any_size_is_damage_not_an_allocation(
    with_dictionary: bool,
) -> None:
    pack = bytearray(written(pages(20, 18), trained(18) if with_dictionary else None)[0][1])
    entries = packs.entries_of(bytes(pack))
    first = entries[0]
    # The content-size flag set to 8 bytes: the header now claims about 2**57 bytes or more.
    pack[first.frame_offset + 4] |= 0xC0
    frame = bytes(pack[first.frame_offset : first.frame_offset + first.frame_length])
    decoder = packs.in_memory(bytes(pack))
    with pytest.raises(packs.PackError):
        decoder.decompress("p", frame)
    frames = sorted({(e.frame_offset, e.frame_length) for e in entries})
    got = list(decoder.decompress_many("p", bytes(pack), frames))
    assert isinstance(got[0], packs.PackError)
    assert not any(isinstance(p, packs.PackError) for p in got[1:])


def test_frames_of_known_sizes_decode_a_batch_per_call_or_say_which_batch_failed() -> None:
    chunks = pages(600, 19)  # 2.4 MiB of pages, a frame each: three batches or so
    pack = bytearray(written(chunks, trained(19))[0][1])
    entries = packs.entries_of(bytes(pack))
    frames = [(e.frame_offset, e.frame_length) for e in entries]
    sizes = [e.length for e in entries]
    decoder = packs.in_memory(bytes(pack))

    batches = list(decoder.decompress_sized("p", memoryview(pack), frames, sizes))
    assert len(batches) > 1 and all(b is not None for b in batches)
    got = [b[n].tobytes() for b in batches if b is not None for n in range(len(b))]
    assert got == chunks

    # A size that is not the frame's fails its batch, not the others: nothing is guessed.
    wrong = [*sizes[:-1], sizes[-1] + 1]
    outcome = [b is None for b in decoder.decompress_sized("p", memoryview(pack), frames, wrong)]
    assert outcome == [False] * (len(batches) - 1) + [True]

    # A damaged frame fails its batch; the careful way (decompress_many) names it.
    offset, length = frames[0]
    pack[offset + length // 2] ^= 0x01
    damaged = packs.in_memory(bytes(pack))
    outcome = [b is None for b in damaged.decompress_sized("p", memoryview(pack), frames, sizes)]
    assert outcome == [True] + [False] * (len(batches) - 1)


def test_frames_of_several_chunks_are_not_decoded_by_one_chunk_size() -> None:
    pack = written(pages(30, 21), None)[0][1]  # no dictionary: frames of several pages
    entries = packs.entries_of(pack)
    frames = sorted({(e.frame_offset, e.frame_length) for e in entries})
    assert len(frames) < len(entries)
    sizes = [entries[0].length] * len(frames)
    got = list(packs.in_memory(pack).decompress_sized("p", memoryview(pack), frames, sizes))
    assert got and all(b is None for b in got)
