"""The box's seal schedule (edge.chain.ChainWriter): every N messages, T seconds after the first unsealed one."""

from __future__ import annotations

from common.signing import generate_signer, parse_public_entry, verify_with
from contract import GENESIS, digest
from contract.chain import prev_of


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def writer(clock: Clock, **kwargs):
    from edge.chain import ChainWriter

    return ChainWriter("box-1", "old-town", generate_signer("box-1"), clock=clock, **kwargs)


def test_seals_every_n_messages_or_after_s_whichever_first_and_only_with_something_new():
    clock = Clock()
    chain = writer(clock, every_n=3, after_s=0.2)
    assert not chain.due()                     # nothing linked yet
    for seq in (1, 2):
        chain.chain(seq, b'{"seq":%d}' % seq)
    assert not chain.due()
    chain.chain(3, b'{"seq":3}')
    assert chain.due()
    chain.seal(1_795_813_200_000)
    assert not chain.due()
    chain.chain(4, b'{"seq":4}')
    clock.now += 0.19
    assert not chain.due()
    clock.now += 0.02
    assert chain.due()                         # 0.2 s after the first unsealed message


def test_each_message_links_to_the_one_before_and_the_seal_signs_the_head():
    chain = writer(Clock())
    first = chain.chain(1, b'{"seq":1}')
    second = chain.chain(2, b'{"seq":2}')
    assert prev_of(first) == GENESIS and prev_of(second) == digest(first)
    seal = chain.seal(1_795_813_200_000)
    assert (seal.seq, seal.head) == (2, digest(second))
    _, key = parse_public_entry(chain.signer.public_entry())
    assert verify_with(key, seal.sig, seal.signed_bytes())


def test_a_restarted_box_seals_its_head_at_once_and_on_request():
    assert writer(Clock(), head_seq=7, head=digest(b"x")).due()
    fresh = writer(Clock())
    fresh.want_seal()
    assert not fresh.due()                     # nothing to seal yet
