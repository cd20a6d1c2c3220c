"""One full scenario through a client generated from openapi.json (openapi-python-client),
over the server's Unix socket: add, lookup, withdraw, opt-out, the subject's record, erase.

Run by .ci/api-client with the generated package `pvclient` on PYTHONPATH and the
seeded server's socket and tokens in the environment (.ci/api-server). Every step
checks the typed answer the document promises; any surprise is an AssertionError.
"""

import os

import httpx
from pvclient import AuthenticatedClient
from pvclient.api.default import (
    get_v1_tenants_tenant_numbers_id as get_number,
    post_v1_sys_tokens as create_token,
    post_v1_tenants_tenant_consent_withdraw as withdraw,
    post_v1_tenants_tenant_erase as erase,
    post_v1_tenants_tenant_lookup as lookup,
    post_v1_tenants_tenant_numbers as add,
    post_v1_tenants_tenant_opt_out as opt_out,
)
from pvclient.models import (
    Add,
    AddResult,
    Changed,
    Error,
    Lookup,
    OptOutAllById,
    Record,
    TenantTokenRequest,
    TenantTokenRequestRole,
    WithdrawByPhone,
    TargetById,
)

SOCK = os.environ["PV_SOCK"]
TENANT = "shop"
# Not among the seeded numbers (.ci/api-server), valid (libphonenumber).
NUMBER = "+447400123958"


def client(token):
    # The generated client over the Unix socket: httpx takes the transport.
    return AuthenticatedClient(
        base_url="http://localhost",
        token=token,
        httpx_args={"transport": httpx.HTTPTransport(uds=SOCK)},
        raise_on_unexpected_status=True,
    )


def expect(resp, status, kind):
    assert resp.status_code == status, (resp.status_code, resp.content[:300])
    assert isinstance(resp.parsed, kind), type(resp.parsed)
    return resp.parsed


def main():
    # The tenant admin holding every purpose: the one writer answered in detail (created,
    # changed, the id); any other writer gets {"accepted": true} whatever the vault holds.
    writer = client(os.environ["PV_TOKEN_ADMIN"])
    reader = client(os.environ["PV_TOKEN_READER"])
    admin = client(os.environ["PV_TOKEN_VAULT_ADMIN"])

    # A token through the API too: a reader limited to otp, made by the vault admin.
    token = expect(
        create_token.sync_detailed(
            client=admin,
            body=TenantTokenRequest(tenant=TENANT, role=TenantTokenRequestRole.READER, purposes=["otp"]),
        ),
        201,
        object,
    )
    otp_reader = client(token.token)

    created = expect(
        add.sync_detailed(
            TENANT,
            client=writer,
            body=Add(phone="+44 7400 123958", consents=["otp", "marketing"], source="ci-client"),
        ),
        201,
        AddResult,
    )
    record_id = created.id
    assert created.status.value == "created", created.status

    found = expect(
        lookup.sync_detailed(TENANT, client=otp_reader, body=Lookup(phone=NUMBER, purpose="otp")),
        200,
        Record,
    )
    assert found.id == record_id and found.masked and NUMBER not in found.phone, found
    assert sorted(found.purposes) == ["marketing", "otp"], found.purposes

    changed = expect(
        withdraw.sync_detailed(TENANT, client=writer, body=WithdrawByPhone(phone=NUMBER, purpose="marketing")),
        200,
        Changed,
    )
    assert changed.changed and changed.id == record_id
    refused = expect(
        lookup.sync_detailed(TENANT, client=reader, body=Lookup(phone=NUMBER, purpose="marketing")),
        404,
        Error,
    )
    assert refused.error.code.value == "not_found", refused.error

    # The subject's record, by id, revealed (the reader token has the reveal right).
    subject = expect(get_number.sync_detailed(TENANT, record_id, client=reader, purpose="otp", reveal=True), 200, Record)
    assert subject.phone == NUMBER and not subject.masked and subject.purposes == ["otp"], subject

    changed = expect(opt_out.sync_detailed(TENANT, client=writer, body=OptOutAllById(id=record_id, all_=True)), 200, Changed)
    assert changed.changed
    gone = expect(get_number.sync_detailed(TENANT, record_id, client=reader, purpose="otp"), 404, Error)
    assert gone.error.code.value == "not_found"

    erased = expect(erase.sync_detailed(TENANT, client=writer, body=TargetById(id=record_id)), 200, object)
    assert erased.erased and erased.id == record_id
    expect(lookup.sync_detailed(TENANT, client=reader, body=Lookup(phone=NUMBER, purpose="otp")), 404, Error)
    print("generated client scenario: add, lookup, withdraw, subject record, opt-out, erase: ok")


if __name__ == "__main__":
    main()
