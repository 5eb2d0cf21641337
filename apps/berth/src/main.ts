import { Command, CommanderError, Option } from 'commander';
import { registerContainerCommands } from './commands/containers';
import { registerGcCommands } from './commands/gc';
import { registerImageCommands } from './commands/images';
import { registerStatsCommand } from './commands/stats';
import { registerSystemCommands } from './commands/system';
import { bashCompletion, zshCompletion } from './completion';
import { CliError, EXIT, errorMessage } from './errors';
import { CLI_VERSION } from './version';

/** Builds the command tree (no connection is made until a command runs). */
export function buildProgram(): Command {
  const program = new Command('berth')
    .description("Docker's ergonomics on berthd (and containerd): images, containers, namespaces")
    .version(CLI_VERSION, '--client-version', "print the client's version only")
    .addOption(new Option('-a, --address <path>', "the daemon's socket (BERTH_ADDRESS, CONTAINERD_ADDRESS; /run/berth/berthd.sock)"))
    .addOption(new Option('-n, --namespace <name>', 'the namespace (CONTAINERD_NAMESPACE; default)'))
    .addOption(new Option('--connect-timeout <seconds>', 'seconds to wait for the socket').default(undefined))
    .showHelpAfterError()
    .enablePositionalOptions();
  registerSystemCommands(program);
  registerImageCommands(program);
  registerContainerCommands(program);
  registerStatsCommand(program);
  registerGcCommands(program);
  program
    .command('completion')
    .description('print a shell completion script')
    .argument('<shell>', 'bash or zsh')
    .action((shell: string) => {
      if (shell === 'bash') process.stdout.write(bashCompletion(program));
      else if (shell === 'zsh') process.stdout.write(zshCompletion(program));
      else throw new CliError(`completion: unknown shell "${shell}" (bash or zsh)`);
    });
  return program;
}

/** Runs the CLI with `argv` (without node and the script) and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  program.exitOverride();
  for (const c of allCommands(program)) c.exitOverride();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --client-version end with code 0; usage errors are printed by commander.
      return err.exitCode === 0 ? 0 : EXIT.daemon;
    }
    process.stderr.write(`berth: ${errorMessage(err)}\n`);
    return err instanceof CliError ? err.exitCode : EXIT.failure;
  }
}

function allCommands(cmd: Command): Command[] {
  return cmd.commands.flatMap((c) => [c, ...allCommands(c)]);
}
