/**
 * `maskloop <command>`: the command line over the engine, the project store and import/export.
 * Exit codes: 0 ok, 1 the work failed, 2 bad command line, 3 project busy, 130 interrupted.
 */
import { EXIT, UsageError, helpText, parseCommandLine, type Command } from './command';
import { exportCommand, importCommand, labelsCommand } from './dataCommands';
import { evalCommand, evalCurveCommand, evalLoopCommand } from './eval';
import { initCommand, modelsCommand, prelabelCommand, pretrainCommand, statusCommand, trainCommand } from './projectCommands';

const commands: Command[] = [initCommand, importCommand, labelsCommand, pretrainCommand, trainCommand, prelabelCommand, exportCommand, statusCommand, modelsCommand, evalCommand, evalCurveCommand, evalLoopCommand];

function overview(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'maskloop — self-supervised segmentation for microscopy, from the command line',
    '',
    'usage: maskloop <command> [options]     (maskloop <command> --help for its options)',
    '',
    'commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [first, ...tail] = argv;
  if (!first || first === '--help' || first === '-h' || first === 'help') {
    console.log(overview());
    return first ? EXIT.ok : EXIT.usage;
  }
  // Sub-commands ('eval curve') are commands whose name has two words.
  const sub = tail[0] !== undefined ? commands.find((c) => c.name === `${first} ${tail[0]}`) : undefined;
  const name = sub ? sub.name : first;
  const rest = sub ? tail.slice(1) : tail;
  const command = sub ?? commands.find((c) => c.name === first);
  if (!command) {
    console.error(`maskloop: unknown command '${name}'\n\n${overview()}`);
    return EXIT.usage;
  }
  const controller = new AbortController();
  // First Ctrl-C asks the running job to stop at the next step (it checkpoints); a second one quits.
  process.once('SIGINT', () => {
    console.error('\nmaskloop: stopping after the current step (Ctrl-C again to quit now)');
    controller.abort();
    process.once('SIGINT', () => process.exit(EXIT.cancelled));
  });
  try {
    const { values, positionals } = parseCommandLine(command, rest);
    if (values.help) {
      console.log(helpText(command));
      return EXIT.ok;
    }
    const json = values.json === true || (values.json === undefined && !process.stdout.isTTY);
    return (await command.run({ values, positionals, json, signal: controller.signal })) ?? EXIT.ok;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`maskloop ${name}: ${err.message}\n\n${helpText(command)}`);
      return EXIT.usage;
    }
    const message = err instanceof Error ? err.message : String(err);
    console.error(`maskloop ${name}: ${message}`);
    if (process.env.MASKLOOP_DEBUG) console.error(err);
    return (err as { code?: string }).code === 'SQLITE_BUSY' ? EXIT.busy : EXIT.failed;
  }
}

process.exitCode = await main(process.argv.slice(2));
