import { Code } from "@connectrpc/connect";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { toConnectError } from "../../src/transport/error-mapper.js";

const lines: string[] = [];
const log = {
  error: (_o: Record<string, unknown>, msg: string) => lines.push(`error ${msg}`),
  warn: (_o: Record<string, unknown>, msg: string) => lines.push(`warn ${msg}`),
};

function driverError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function serverError(code: string): Error {
  // postgres.js builds its errors from the server's fields; the shape is all the mapper reads.
  const e = new postgres.PostgresError(`server says ${code}`);
  return Object.assign(e, { code, query: "select secret from tokens" });
}

function reasonOf(err: unknown): { code: Code; reason: string | undefined; message: string } {
  const mapped = toConnectError(err, log, "latchkey.v1.TokenAdminService/ListTokens");
  return {
    code: mapped.code,
    reason: mapped.findDetails(ErrorInfoSchema)[0]?.reason,
    message: mapped.rawMessage,
  };
}

describe("storage unreachable → UNAVAILABLE / STORAGE_UNAVAILABLE", () => {
  const driver =
    "CONNECT_TIMEOUT CONNECTION_CLOSED CONNECTION_DESTROYED CONNECTION_ENDED ECONNREFUSED ECONNRESET";
  it.each(driver.split(" "))("postgres.js %s", (code) => {
    expect(reasonOf(driverError(code, `write ${code} 127.0.0.1:5432`))).toEqual({
      code: Code.Unavailable,
      reason: "STORAGE_UNAVAILABLE",
      message: "storage is unavailable",
    });
  });
  it.each(["57P01", "57P02", "57P03", "08006", "08001"])("SQLSTATE %s", (code) => {
    expect(reasonOf(serverError(code))).toMatchObject({
      code: Code.Unavailable,
      reason: "STORAGE_UNAVAILABLE",
    });
  });
  it("a connection error wrapped as a cause", () => {
    const wrapped = new Error("query failed", { cause: driverError("ECONNREFUSED", "x") });
    expect(reasonOf(wrapped).code).toBe(Code.Unavailable);
  });
  it("other server errors stay INTERNAL, with nothing of the driver's text", () => {
    const mapped = reasonOf(serverError("42P01"));
    expect(mapped).toEqual({ code: Code.Internal, reason: "INTERNAL", message: "internal error" });
  });
});
