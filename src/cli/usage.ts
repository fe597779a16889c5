/** The help text, printed by `--help` and after every usage error. */
export const USAGE = `latchkey — the token authority's command line

Usage: latchkey [--server URL] [--token TOKEN] [--json] <command> [options]

Commands:
  login --token TOKEN            save the token in the config file
  logout                         remove the saved token
  tokens create --name N --type personal|team|cicd|ephemeral
                [--role R | --permission P ...] [--ttl 30d] [--cidr C ...]
                [--meta k=v ...] [--max-uses N] [--team T] [--owner O] [--org O]
  tokens list [--type T] [--state active|expired|revoked|exhausted] [--team T]
              [--owner O] [--unused-for 30d] [--never-used] [--org O] [--all]
  tokens get ID
  tokens update ID [--name N] [--meta k=v ...] [--cidr C ...] [--ttl 7d]
  tokens revoke ID [--reason TEXT]
  tokens rotate ID [--grace 1h]
  audit list [--token-id ID] [--actor-id ID] [--action A] [--org O]
  verify TOKEN [--permission P ...] [--ip ADDR] [--org O]

The caller token is taken from --token, else LATCHKEY_TOKEN, else the config file
written by 'latchkey login'. The server is --server, else LATCHKEY_SERVER, else
http://127.0.0.1:50051 (the gRPC listener).`;
