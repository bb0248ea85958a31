// Tells the demo's story in the terminal: one line per thing that happened, and a progress
// line for the wave the candidate is on, printed when it changes.

import type { Writable } from 'node:stream';
import type { Status } from '../wire/status.ts';

export type { Status };

export class Narrator {
  private readonly out: Writable;
  private readonly started = Date.now();
  private lastProgress = '';
  private lastWave = '';

  constructor(out: Writable) {
    this.out = out;
  }

  private clock(): string {
    const s = Math.floor((Date.now() - this.started) / 1000);
    return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
  }

  title(text: string): void {
    this.out.write(`\n== ${text}\n`);
  }

  line(text: string): void {
    this.out.write(`${text}\n`);
  }

  step(text: string): void {
    this.out.write(`[${this.clock()}] ${text}\n`);
  }

  /** The "is on wave" line for a wave a revision reached between two looks (once). */
  reached(revision: string, wave: number, name: string): void {
    const key = `${revision}:${wave}`;
    if (key === this.lastWave) return;
    this.lastWave = key;
    this.step(`${revision.slice(0, 7)} is on wave ${wave} (${name})`);
  }

  progress(s: Status): void {
    const c = s.candidate;
    if (!c) return;
    const wave = s.waves[c.waveIndex];
    if (!wave) return;
    const key = `${c.revision}:${c.waveIndex}`;
    if (key !== this.lastWave) {
      this.lastWave = key;
      this.step(`${c.revision.slice(0, 7)} is on wave ${c.waveIndex} (${wave.name})`);
    }
    const text = `${wave.name}: ${wave.running.candidate}/${wave.agents} agents on the candidate, ${wave.health.failed} failed`;
    if (text !== this.lastProgress) {
      this.lastProgress = text;
      this.step(`  ${text}`);
    }
  }
}
