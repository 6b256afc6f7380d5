/**
 * `kmaplab serve`: the lab server itself, exactly as `npm start` runs it. The one place the
 * CLI loads server code, and only here (a dynamic import), so client commands start fast
 * and never open a database.
 */
import { intOption, type Command, type Context } from '../args.js'

export const serveCommand: Command = {
  name: 'serve',
  usage: '[--port N] [--host H] [--db FILE]',
  summary: 'Run the lab server (the same server as `npm start`) until SIGINT or SIGTERM.',
  help: `  --port N     where to listen (env PORT, default 3000; 0 picks a free port)
  --host H     the address (env HOST, default 127.0.0.1; any other needs KMAPLAB_TOKENS)
  --db FILE    the SQLite file (env KMAPLAB_DB, default ./data/kmaplab.db)
Every other setting comes from the environment, as listed in the README (KMAPLAB_TOKENS,
KMAPLAB_DURABILITY, LOG_LEVEL, ...). Logs are JSON lines on stdout.`,
  options: { port: { type: 'string' }, host: { type: 'string' }, db: { type: 'string' } },
  async run(ctx: Context) {
    if (ctx.positionals.length > 0) ctx.usage(`unexpected arguments: ${ctx.positionals.join(' ')}`)
    const port = intOption(ctx, 'port')
    if (port !== undefined) process.env.PORT = String(port)
    if (ctx.values.host !== undefined) process.env.HOST = String(ctx.values.host)
    if (ctx.values.db !== undefined) process.env.KMAPLAB_DB = String(ctx.values.db)
    const { main } = await import('../../server.js')
    await main()
    // The server now runs until a signal; its own handlers exit the process.
    return new Promise<number>(() => {})
  },
}
