"""A PostgreSQL password never shows, whatever libpq makes of the URL (issue 25): not in a
store error, not in what `miniscan stats` prints, not in the writer's heartbeat (the reason
/readyz gives). Reproduced at 3b16fd5: libpq repeats the part of a URL it cannot parse.

Each broken form is one that moved libpq's split or broke its parse; the last case is a valid
URL that the server refuses (a wrong password), which must also exit at start-up rather than
be waited for.
"""

from __future__ import annotations

from multiprocessing import Pipe

import pytest
from click.testing import CliRunner
from role_doubles import read_sent, writer_settings

from commands.miniscan import main as miniscan
from contracts.lifecycle import CannotStart
from store.backend import open_store
from store.errors import StoreError, StoreUnavailable
from store.postgres.connection import connect, describe
from store.writer_process import WriterRole

BROKEN_URLS = {
    "invalid percent-encoding": ("postgresql://bob:S3cr%zzet@127.0.0.1:1/x", "S3cr%zzet"),
    "a space in the password": ("postgresql://bob:my s3cret@127.0.0.1:1/x", "s3cret"),
    "a broken IPv6 host": ("postgresql://bob:S3cretPw@[::1:1/x", "S3cretPw"),
    "an @ in the password": ("postgresql://bob:pa@ss3cret@127.0.0.1:1/x", "ss3cret"),
    "a / in the password": ("postgresql://bob:Zm9vYmFy/YmF6@127.0.0.1:5432/x", "Zm9vYmFy"),
}


@pytest.mark.parametrize(("url", "secret"), BROKEN_URLS.values(), ids=BROKEN_URLS.keys())
def test_no_message_holds_the_password_of_a_broken_url(url, secret, tmp_path) -> None:
    with pytest.raises(StoreError) as refused:
        open_store(url)
    assert secret not in str(refused.value) and "ss3" not in str(refused.value)
    try:
        shown = describe(url)
    except StoreError as exc:
        shown = str(exc)
    assert secret not in shown and "ss3" not in shown
    printed = CliRunner().invoke(miniscan, ["stats", "--db", url])
    assert printed.exit_code != 0 and secret not in printed.output, printed.output
    supervisor_end, theirs = Pipe()
    try:
        role = WriterRole.open(theirs, writer_settings(url))
    except CannotStart as exc:  # what the supervisor prints and exits 3 with
        assert secret not in str(exc)
        return
    role.heartbeat_if_due()  # what /readyz shows as the reason
    [beat] = read_sent(supervisor_end)
    assert beat.database_problem and secret not in beat.database_problem
    role.shutdown()


def test_a_slash_in_the_password_is_refused_without_showing_either_half() -> None:
    # libpq splits this as host=bob, port=Zm9vYmFy, dbname=YmF6@127.0.0.1:5432/x.
    with pytest.raises(StoreError) as refused:
        describe("postgresql://bob:Zm9vYmFy/YmF6@127.0.0.1:5432/x")
    assert not isinstance(refused.value, StoreUnavailable), "a refusal is not weather"
    assert "Zm9" not in str(refused.value) and "YmF" not in str(refused.value)


def test_no_field_that_shares_the_password_is_shown() -> None:
    shown = describe("postgresql://bob:hunter2x@db.hunter2x.example:5432/app")
    assert "hunter2" not in shown and shown.startswith("postgresql://bob@?:5432/app")


def test_a_refused_password_is_not_waited_for_and_not_shown(postgres_cluster) -> None:
    postgres_cluster.add_password_role("pw_bob", "Right-S3cret")
    good = f"postgresql://pw_bob:Right-S3cret@127.0.0.1:{postgres_cluster.port}/postgres"
    connect(good, "the test's role").close()  # the role works with its password
    wrong = good.replace("Right-S3cret", "Wr0ng-S3cret")
    with pytest.raises(StoreError) as refused:
        open_store(wrong)
    assert not isinstance(refused.value, StoreUnavailable), "a refusal is not weather"
    assert "authentication failed" in str(refused.value)
    assert "Wr0ng" not in str(refused.value)
    _, theirs = Pipe()
    with pytest.raises(CannotStart) as cannot:
        WriterRole.open(theirs, writer_settings(wrong))
    assert "Wr0ng" not in str(cannot.value)
    printed = CliRunner().invoke(miniscan, ["stats", "--db", wrong])
    assert printed.exit_code != 0 and "Wr0ng" not in printed.output
