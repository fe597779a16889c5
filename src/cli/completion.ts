import type { Command } from "./commands/command.js";
import { FLAGS, type FlagName, flagSpec, GLOBAL_FLAGS } from "./flags.js";

/** The words that may follow `prefix` (`tokens` → create, list, …). */
function nextWords(commands: readonly Command[], prefix: string): string[] {
  const words = new Set<string>();
  for (const c of commands) {
    for (const name of [c.name, ...(c.aliases ?? [])]) {
      const parts = name.split(" ");
      const head = parts.slice(0, prefix === "" ? 0 : prefix.split(" ").length).join(" ");
      const next = parts[prefix === "" ? 0 : prefix.split(" ").length];
      if (head === prefix && next !== undefined) words.add(next);
    }
  }
  return [...words];
}

function flagsOf(c: Command): string[] {
  return [...GLOBAL_FLAGS, ...c.flags].map((f) => `--${f}`);
}

const TOP_EXTRA = ["help", "completion"];

/** Flags that take a value (long and short forms): the word after one is not a command word. */
function valuedFlags(): string[] {
  return (Object.keys(FLAGS) as FlagName[]).flatMap((f) => {
    const s = flagSpec(f);
    if (s.type !== "string") return [];
    return s.short === undefined ? [`--${f}`] : [`--${f}`, `-${s.short}`];
  });
}

/** Flags whose value is a file name (`--ca-cert FILE`): the shells complete paths for them. */
function fileFlags(): string[] {
  return (Object.keys(FLAGS) as FlagName[])
    .filter((f) => flagSpec(f).value === "FILE")
    .map((f) => `--${f}`);
}

function bash(commands: readonly Command[]): string {
  const cases = commands
    .map((c) => `    "${c.name}") opts="${flagsOf(c).join(" ")}" ;;`)
    .join("\n");
  const groups = [...new Set(commands.map((c) => c.name.split(" ")[0] ?? ""))]
    .map((g) => {
      const subs = nextWords(commands, g);
      return subs.length === 0 ? "" : `    "${g}") words="${subs.join(" ")}" ;;`;
    })
    .filter((l) => l !== "")
    .join("\n");
  const choices = (Object.keys(FLAGS) as FlagName[])
    .map((f) => {
      const ch = flagSpec(f).choices;
      return ch === undefined
        ? ""
        : `    --${f}) COMPREPLY=($(compgen -W "${ch.join(" ")}" -- "$cur")); return ;;`;
    })
    .filter((l) => l !== "")
    .concat(
      fileFlags().length === 0
        ? []
        : [`    ${fileFlags().join("|")}) COMPREPLY=($(compgen -f -- "$cur")); return ;;`],
    )
    .join("\n");
  return `# bash completion for latchkey: eval "$(latchkey completion bash)"
_latchkey() {
  local cur prev words opts cmd w i
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  case "$prev" in
${choices}
  esac
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if [[ "$w" == -* ]]; then
      # A flag that takes a value (and has no =value) also takes the next word.
      [[ "$w" != *=* && " ${valuedFlags().join(" ")} " == *" $w "* ]] && ((i++))
      continue
    fi
    # Words after a whole command are its arguments (ids), not part of its name.
    [[ "|${commands.flatMap((c) => [c.name, ...(c.aliases ?? [])]).join("|")}|" == *"|$cmd|"* ]] && break
    cmd="\${cmd:+$cmd }$w"
  done
  words=""
  case "$cmd" in
    "") words="${[...nextWords(commands, ""), ...TOP_EXTRA].join(" ")}" ;;
${groups}
    "completion") words="bash zsh fish" ;;
  esac
  opts="${GLOBAL_FLAGS.map((f) => `--${f}`).join(" ")}"
  case "$cmd" in
${cases}
  esac
  if [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
  else
    COMPREPLY=($(compgen -W "$words" -- "$cur"))
  fi
}
complete -F _latchkey latchkey
`;
}

function zsh(commands: readonly Command[]): string {
  return `#compdef latchkey
# zsh completion for latchkey: latchkey completion zsh > "\${fpath[1]}/_latchkey"
# (or, for this shell only: source <(latchkey completion zsh))
${bash(commands)
  .replace(/^# bash completion.*\n/, "")
  .replace(
    "complete -F _latchkey latchkey",
    "autoload -U +X bashcompinit && bashcompinit\ncomplete -F _latchkey latchkey",
  )}`;
}

function fish(commands: readonly Command[]): string {
  const lines = [
    "# fish completion for latchkey: latchkey completion fish | source",
    "complete -c latchkey -f",
  ];
  for (const w of [...nextWords(commands, ""), ...TOP_EXTRA]) {
    lines.push(`complete -c latchkey -n "__fish_use_subcommand" -a ${w}`);
  }
  for (const g of new Set(commands.map((c) => c.name.split(" ")[0] ?? ""))) {
    for (const sub of nextWords(commands, g)) {
      lines.push(`complete -c latchkey -n "__fish_seen_subcommand_from ${g}" -a ${sub}`);
    }
  }
  lines.push('complete -c latchkey -n "__fish_seen_subcommand_from completion" -a "bash zsh fish"');
  for (const name of Object.keys(FLAGS) as FlagName[]) {
    const s = flagSpec(name);
    const choices = s.choices === undefined ? "" : ` -x -a "${s.choices.join(" ")}"`;
    const takes =
      s.type === "string" && s.choices === undefined ? (s.value === "FILE" ? " -r -F" : " -r") : "";
    lines.push(
      `complete -c latchkey -l ${name}${s.short === undefined ? "" : ` -s ${s.short}`}${takes}${choices} -d "${s.help.replaceAll('"', "'")}"`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** The completion script for `shell`, built from the same command table as the help. */
export function completionScript(shell: string, commands: readonly Command[]): string | undefined {
  if (shell === "bash") return bash(commands);
  if (shell === "zsh") return zsh(commands);
  if (shell === "fish") return fish(commands);
  return undefined;
}
