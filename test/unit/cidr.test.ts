import { describe, expect, it } from "vitest";
import { compileCidrs, ipAllowed, normalizeCidr, normalizeIp } from "../../src/domain/cidr.js";

describe("normalizeCidr", () => {
  it.each([
    ["10.1.2.3", "10.1.2.3/32"],
    ["10.1.2.3/32", "10.1.2.3/32"],
    ["10.1.2.3/8", "10.0.0.0/8"],
    ["192.168.1.255/24", "192.168.1.0/24"],
    ["0.0.0.0/0", "0.0.0.0/0"],
    ["255.255.255.255/0", "0.0.0.0/0"],
    ["1.2.3.4/31", "1.2.3.4/31"],
    ["1.2.3.5/31", "1.2.3.4/31"],
    ["::1", "::1/128"],
    ["::", "::/128"],
    ["::/0", "::/0"],
    ["2001:DB8::1", "2001:db8::1/128"],
    ["2001:db8:0:0:0:0:0:1", "2001:db8::1/128"],
    ["2001:0db8:0000::0001/64", "2001:db8::/64"],
    ["2001:db8:abcd:ef01::/32", "2001:db8::/32"],
    ["2001:db8::ffff/127", "2001:db8::fffe/127"],
    ["fe80::1:0:0:1", "fe80::1:0:0:1/128"],
    ["::ffff:1.2.3.4", "1.2.3.4/32"],
    ["::FFFF:1.2.3.4", "1.2.3.4/32"],
    ["::ffff:0102:0304", "1.2.3.4/32"],
    ["::ffff:10.1.2.3/104", "10.0.0.0/8"],
    ["::ffff:0:0/96", "0.0.0.0/0"],
    ["::ffff:0:0/95", "::fffe:0:0/95"],
    ["::1.2.3.4", "::102:304/128"],
    ["1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0/128"],
    ["::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8/128"],
    ["1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:102:304/128"],
    ["1::1.2.3.4", "1::102:304/128"],
    ["1:0:0:1:0:0:0:1", "1:0:0:1::1/128"],
  ])("%j → %j", (input, out) => {
    expect(normalizeCidr(input)).toBe(out);
  });

  it.each([
    "",
    " ",
    "abc",
    "10.0.0.0/33",
    "10.0.0.0/-1",
    "10.0.0.0/",
    "10.0.0.0/08",
    "10.0.0.0/8/8",
    "10.0.0.0 /8",
    " 10.0.0.0/8",
    "10.0.0.0/8 ",
    "010.0.0.1",
    "10.0.0.01",
    "1.2.3",
    "1.2.3.4.5",
    "256.0.0.1",
    "0x7f.0.0.1",
    "127.1",
    "2130706433",
    "::1/129",
    "::1/1280",
    "fe80::1%eth0",
    "fe80::1%eth0/64",
    "1:2:3:4:5:6:7:8:9",
    "1:2:3:4:5:6:7",
    ":1::2",
    "1::2:",
    ":::",
    "1:::2",
    ":1.2.3.4",
    "1:2:3:4:5:6:7:1.2.3.4",
    "::1:2:3:4:5:6:7:8",
    "1.2.3.4::",
    "::1.2.3.4:1",
    "1::2::3",
    "12345::",
    "::ffff:01.2.3.4",
    "::ffff:1.2.3.256",
    "g::1",
    "[::1]",
    "1.2.3.4:80",
  ])("refuses %j", (input) => {
    expect(normalizeCidr(input)).toBeUndefined();
  });
});

describe("normalizeIp", () => {
  it.each([
    ["1.2.3.4", "1.2.3.4"],
    ["::ffff:1.2.3.4", "1.2.3.4"],
    ["::ffff:a00:1", "10.0.0.1"],
    ["2001:DB8:0::1", "2001:db8::1"],
    ["::1", "::1"],
  ])("%j → %j", (input, out) => {
    expect(normalizeIp(input)).toBe(out);
  });

  it.each(["", "1.2.3.4/32", "::1/128", "localhost", "01.2.3.4", "fe80::1%lo", " 1.2.3.4"])(
    "refuses %j",
    (input) => {
      expect(normalizeIp(input)).toBeUndefined();
    },
  );
});

describe("ipAllowed", () => {
  it("an empty list allows anyone, even with no address", () => {
    const c = compileCidrs([]);
    for (const ip of ["", "garbage", "1.2.3.4", "::1"]) expect(ipAllowed(c, ip)).toBe(true);
  });

  it("a restricted list refuses a missing or unparseable address", () => {
    const c = compileCidrs(["0.0.0.0/0", "::/0"]);
    for (const ip of ["", "garbage", "1.2.3.4/32", "01.2.3.4", "fe80::1%eth0"]) {
      expect(ipAllowed(c, ip)).toBe(false);
    }
    expect(ipAllowed(c, "1.2.3.4")).toBe(true);
    expect(ipAllowed(c, "2001:db8::1")).toBe(true);
  });

  it("fails closed when every entry is unparseable", () => {
    const c = compileCidrs(["nonsense"]);
    expect(ipAllowed(c, "1.2.3.4")).toBe(false);
  });

  const c = compileCidrs(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", "::1", "0.0.0.0/32"]);
  it.each([
    ["10.0.0.0", true],
    ["10.255.255.255", true],
    ["9.255.255.255", false],
    ["11.0.0.0", false],
    ["192.168.1.7", true],
    ["192.168.1.6", false],
    ["192.168.1.8", false],
    ["0.0.0.0", true],
    ["0.0.0.1", false],
    ["::ffff:10.1.2.3", true],
    ["::FFFF:192.168.1.7", true],
    ["::ffff:11.0.0.0", false],
    ["2001:db8::", true],
    ["2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true],
    ["2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false],
    ["2001:db9::", false],
    ["::1", true],
    ["::2", false],
    ["::", false],
  ] as const)("%s → %s", (ip, ok) => {
    expect(ipAllowed(c, ip)).toBe(ok);
  });

  it("keeps families apart: ::/0 does not admit IPv4, 0.0.0.0/0 does not admit IPv6", () => {
    expect(ipAllowed(compileCidrs(["::/0"]), "1.2.3.4")).toBe(false);
    expect(ipAllowed(compileCidrs(["::/0"]), "::ffff:1.2.3.4")).toBe(false);
    expect(ipAllowed(compileCidrs(["0.0.0.0/0"]), "::1")).toBe(false);
    expect(ipAllowed(compileCidrs(["0.0.0.0/0"]), "::ffff:1.2.3.4")).toBe(true);
  });

  it("mapped CIDR entries match plain IPv4 clients", () => {
    const m = compileCidrs(["::ffff:10.0.0.0/104"]);
    expect(ipAllowed(m, "10.9.9.9")).toBe(true);
    expect(ipAllowed(m, "11.0.0.1")).toBe(false);
  });

  it("handles prefix lengths at every IPv4 and IPv6 boundary", () => {
    for (let p = 0; p <= 32; p++) {
      const cc = compileCidrs([`128.0.0.0/${p}`]);
      expect(ipAllowed(cc, "128.0.0.0")).toBe(true);
      expect(ipAllowed(cc, "127.255.255.255")).toBe(p === 0);
    }
    for (let p = 0; p <= 128; p++) {
      const cc = compileCidrs([`8000::/${p}`]);
      expect(ipAllowed(cc, "8000::")).toBe(true);
      expect(ipAllowed(cc, "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(p === 0);
      const last =
        p === 128 ? "8000::" : `8000::${p >= 113 ? (2 ** (128 - p) - 1).toString(16) : "1"}`;
      expect(ipAllowed(cc, last)).toBe(true);
    }
  });
});
