// The fuzzers' world: a lab with two principals, alice's machine (the target) and bob's (which
// no request of alice may ever touch), and a fingerprint of everything a request could change,
// taken from the service itself so that a refused request can be shown to have changed nothing.
import { bearer, config, openSharedLab, type TestLab } from '../api/fixtures/lab.js'

export class World {
  mine = ''
  theirs = ''

  constructor(readonly lab: TestLab) {}

  static async open(env: Record<string, string> = {}): Promise<World> {
    // Limits lifted: a fuzzer that hits the rate or machine limit only tests the limit.
    const world = new World(await openSharedLab({ KMAPLAB_RATE_MAX: '1000000000', KMAPLAB_MAX_MACHINES: '100000', ...env }))
    world.theirs = await world.create('bob')
    await world.freshTarget()
    return world
  }

  async create(who: 'alice' | 'bob'): Promise<string> {
    const res = await this.lab.app.inject({ method: 'POST', url: '/v1/machines', payload: config, headers: bearer(who) })
    const id = res.json().id as string
    await this.lab.app.inject({ method: 'POST', url: `/v1/machines/${id}/ops`, payload: { ops: [{ op: 'spawn', name: 'A', cpu: 0 }, { op: 'spawn', name: 'B', cpu: 1 }] }, headers: bearer(who) })
    return id
  }

  /** A new target machine for alice, when the old one was deleted or halted by an accepted input. */
  async freshTarget(): Promise<void> {
    this.mine = await this.create('alice')
  }

  /** Each principal's machines with their head, and the two machines' full state documents. */
  async fingerprint(): Promise<string> {
    const { service } = this.lab
    const parts: unknown[] = []
    for (const [who, id] of [['alice', this.mine], ['bob', this.theirs]] as const) {
      parts.push(service.list(who, '', 100_000).machines.map((m) => [m.id, m.seq, m.opCount, m.status]))
      parts.push(await service.state(who, id).catch((err: Error) => err.message))
    }
    return JSON.stringify(parts)
  }

  /** Keeps the target usable after an accepted input deleted or halted it. */
  async repair(): Promise<void> {
    const target = this.lab.service.list('alice', '', 100_000).machines.find((m) => m.id === this.mine)
    if (!target || target.status !== 'running') await this.freshTarget()
  }
}
