/** Reading JSON that a user hands the CLI: inline, from a file, or from stdin (`-`). */
import { readFile } from 'node:fs/promises'
import { CliError } from './errors.js'

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** The text of FILE, or of stdin for `-`, with an error that names the file. */
export async function readText(file: string): Promise<string> {
  if (file === '-') return readStdin()
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
}

export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text)
  } catch (err) {
    throw new CliError(`${what} is not valid JSON: ${(err as Error).message}`)
  }
}
