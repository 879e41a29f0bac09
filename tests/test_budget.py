"""The global iteration budget's accounting."""

from bootbench.run.budget import TicketOffice


def test_exactly_planned_tickets_are_granted_across_workers():
    office = TicketOffice(planned=5)
    grants = [office.grant(w) for w in ("a", "b", "a", "b", "a", "b", "a")]
    assert grants == [1, 2, 3, 4, 5, None, None]
    for worker, n in (("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)):
        assert office.finish(worker, n)
    assert office.done and office.complete
    assert office.report()["workers"] == ["a", "b"]


def test_duplicates_and_strays_are_not_counted():
    office = TicketOffice(planned=2)
    n = office.grant("a")
    assert office.finish("a", n) and not office.finish("a", n) and not office.finish("b", 99)
    assert office.finished == 1


def test_a_dead_worker_loses_only_its_tickets_in_flight():
    office = TicketOffice(planned=4)
    a1, b1, a2 = office.grant("a"), office.grant("b"), office.grant("a")
    office.finish("a", a1)
    assert office.write_off("a") == [a2]
    assert office.grant("b") == 4
    office.finish("b", b1)
    office.finish("b", 4)
    assert office.done and not office.complete
    assert office.report()["lost"] == 1 and office.report()["lost_iterations"] == {"a": [3]}


def test_closed_office_grants_nothing_and_zero_means_unlimited():
    office = TicketOffice(planned=0)
    assert [office.grant("a") for _ in range(3)] == [1, 2, 3] and not office.done
    office.close()
    assert office.grant("a") is None


def test_an_abandoned_ticket_is_lost_once_and_the_run_can_end():
    office = TicketOffice(planned=2)
    a, b = office.grant("w"), office.grant("w")
    assert office.abandon("w", a) and not office.abandon("w", a)
    office.finish("w", b)
    assert office.done and office.report()["lost_iterations"] == {"w": [1]}
