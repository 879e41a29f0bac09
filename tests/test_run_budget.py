"""The iteration budget's accounting (bootbench/run/budget.py): exactly N over every worker."""

from bootbench.run.budget import IterationBudget


def test_exactly_planned_tickets_are_granted_across_workers():
    budget = IterationBudget(planned=5)
    grants = [budget.grant(w) for w in ("a", "b", "a", "b", "a", "b", "a")]
    assert grants == [1, 2, 3, 4, 5, None, None]
    for worker, n in (("a", 1), ("b", 2), ("a", 3), ("b", 4), ("a", 5)):
        assert budget.finish(worker, n)
    assert budget.done and budget.complete
    assert budget.accounting()["workers"] == ["a", "b"]


def test_duplicates_and_strays_are_not_counted():
    budget = IterationBudget(planned=2)
    n = budget.grant("a")
    assert budget.finish("a", n) and not budget.finish("a", n) and not budget.finish("b", 99)
    assert budget.finished == 1


def test_a_dead_worker_loses_only_its_tickets_in_flight():
    budget = IterationBudget(planned=4)
    a1, b1, a2 = budget.grant("a"), budget.grant("b"), budget.grant("a")
    budget.finish("a", a1)
    assert budget.write_off("a") == [a2]
    assert budget.grant("b") == 4
    budget.finish("b", b1)
    budget.finish("b", 4)
    assert budget.done and not budget.complete
    assert budget.accounting()["lost"] == 1 and budget.accounting()["lost_iterations"] == {"a": [3]}


def test_a_closed_budget_grants_nothing_and_zero_means_unlimited():
    budget = IterationBudget(planned=0)
    assert [budget.grant("a") for _ in range(3)] == [1, 2, 3] and not budget.done
    budget.close()
    assert budget.grant("a") is None


def test_an_abandoned_ticket_is_lost_once_and_the_run_can_end():
    budget = IterationBudget(planned=2)
    a, b = budget.grant("w"), budget.grant("w")
    assert budget.abandon("w", a) and not budget.abandon("w", a)
    budget.finish("w", b)
    assert budget.done and budget.accounting()["lost_iterations"] == {"w": [1]}


def test_a_ticket_given_back_is_granted_again_before_new_numbers_and_exactly_n_finish():
    budget = IterationBudget(planned=3)
    assert [budget.grant("a"), budget.grant("b")] == [1, 2]
    assert budget.give_back("a", 1, interrupted=True) and not budget.give_back("a", 1, interrupted=True)
    assert budget.give_back("b", 2, interrupted=False)
    assert budget.never_started == 3 and not budget.done
    assert [budget.grant("c"), budget.grant("c"), budget.grant("c"), budget.grant("c")] == [1, 2, 3, None]
    for n in (1, 2, 3):
        assert budget.finish("c", n)
    assert budget.done and budget.complete
    accounting = budget.accounting()
    assert (accounting["started"], accounting["finished"], accounting["lost"], accounting["never_started"]) == (3, 3, 0, 0)
    assert accounting["interrupted"] == [{"iteration": 1, "worker": "a"}], "only a cycle cut short is on record"


def test_a_closed_budget_does_not_grant_a_given_back_ticket_and_counts_it_never_started():
    budget = IterationBudget(planned=4)
    budget.grant("a"), budget.grant("a")
    budget.give_back("a", 2, interrupted=True)
    budget.close()
    assert budget.grant("a") is None
    assert budget.never_started == 3


def test_a_late_sample_of_a_written_off_iteration_counts_once_as_finished():
    budget = IterationBudget(planned=2)
    a, b = budget.grant("slow"), budget.grant("b")
    assert budget.write_off("slow") == [a]
    assert budget.finish("slow", a) and not budget.finish("slow", a)
    assert budget.finish("b", b)
    accounting = budget.accounting()
    assert (accounting["finished"], accounting["lost"], accounting["lost_iterations"]) == (2, 0, {})
    assert accounting["recovered"] == [a] and budget.complete
