import type { Command } from 'commander';

/** The command tree as completion needs it: each command path with its subcommands and flags. */
interface Node {
  path: string[];
  subcommands: string[];
  flags: string[];
}

function walk(cmd: Command, path: string[], out: Node[]): void {
  const subs = cmd.commands.filter((c) => c.name() !== 'help');
  const flags = cmd.options.flatMap((o) => [o.short, o.long].filter((x): x is string => !!x));
  out.push({ path, subcommands: subs.flatMap((c) => [c.name(), ...c.aliases()]), flags: [...flags, '--help'] });
  for (const c of subs) for (const name of [c.name(), ...c.aliases()]) walk(c, [...path, name], out);
}

/** Words to offer after `path` (subcommands first, then flags). */
function table(program: Command): Node[] {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  return nodes;
}

/**
 * A bash completion script for the program: a function that finds the deepest command path among
 * the words typed so far and offers its subcommands and flags (`complete -F`).
 */
export function bashCompletion(program: Command): string {
  const name = program.name();
  const cases = table(program)
    .map((n) => `    "${n.path.join(' ')}") words="${[...n.subcommands, ...n.flags].join(' ')}" ;;`)
    .join('\n');
  return `# bash completion for ${name}: source it, or put it in /etc/bash_completion.d/${name}
_${name}_complete() {
  local cur path="" w i words=""
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    [[ "$w" == -* ]] && continue
    case "\${path:+$path }$w" in
${table(program)
  .filter((n) => n.path.length > 0)
  .map((n) => `      "${n.path.join(' ')}") path="${n.path.join(' ')}" ;;`)
  .join('\n')}
    esac
  done
  case "$path" in
${cases}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _${name}_complete ${name}
`;
}

/** A zsh completion script: zsh's bashcompinit runs the bash function. */
export function zshCompletion(program: Command): string {
  return `#compdef ${program.name()}
# zsh completion for ${program.name()}: source it from .zshrc
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program)}`;
}
