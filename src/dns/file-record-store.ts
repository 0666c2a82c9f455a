// A RecordStore in a local JSON file, for the records API when there is no etcd (the embedded
// default): everything in the file is the owner's. Written whole, to a temporary file renamed
// over the old one, so a crash leaves the old or the new set, never a torn one.
import fs from 'node:fs';
import path from 'node:path';
import type { Plan, RecordStore } from './plan.ts';
import { compareRecords, type DnsRecord, recordKey } from './rr.ts';

export class FileRecordStore implements RecordStore {
  readonly id: string;
  private readonly file: string;

  constructor(file: string) {
    this.file = path.resolve(file);
    this.id = `file://${this.file}`;
  }

  async owned(): Promise<readonly DnsRecord[]> {
    let text: string;
    try {
      text = await fs.promises.readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const j = JSON.parse(text) as { records?: DnsRecord[] };
    if (!Array.isArray(j.records)) throw new Error(`${this.id}: not a record file ({"records": [...]})`);
    return [...j.records].sort(compareRecords);
  }

  async apply(p: Plan): Promise<void> {
    const map = new Map((await this.owned()).map((r) => [recordKey(r), r]));
    for (const r of p.delete) map.delete(recordKey(r));
    for (const u of p.update) map.set(recordKey(u.to), u.to);
    for (const r of p.create) map.set(recordKey(r), r);
    await fs.promises.mkdir(path.dirname(this.file), { recursive: true });
    const tmp = `${this.file}.${process.pid}.tmp`;
    await fs.promises.writeFile(tmp, `${JSON.stringify({ records: [...map.values()].sort(compareRecords) }, null, 1)}\n`, { mode: 0o600 });
    await fs.promises.rename(tmp, this.file);
  }
}
