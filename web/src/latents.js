// Where the viewer entropy-decodes grid scales: in a Web Worker
// (latent-worker.js, beside the bundle), or on the page itself where a
// worker cannot start (then the page pauses while a scale decodes).
import { decodeGridLatents } from "../pkg/strata_decoder.js";

export class LatentDecoder {
    constructor(workerUrl) {
        this.jobs = new Map();
        this.next = 0;
        this.worker = null;
        try {
            this.worker = new Worker(workerUrl, { type: "module" });
        } catch {
            return;
        }
        this.worker.onmessage = ({ data }) => {
            const job = this.jobs.get(data.id);
            this.jobs.delete(data.id);
            if (data.error) job?.reject(new Error(data.error));
            else job?.resolve({ latents: data.latents, ms: data.ms, where: "worker" });
        };
        // A worker that fails to load: its jobs, and later ones, run here.
        this.worker.onerror = (e) => {
            e.preventDefault?.();
            this.worker = null;
            for (const [, job] of this.jobs) job.retry();
            this.jobs.clear();
        };
    }

    /** `job` from StrataDecoder.pendingLatents(): resolves to { latents, ms, where }. */
    decode(job) {
        if (!this.worker) return Promise.resolve(this.here(job));
        return new Promise((resolve, reject) => {
            const id = this.next++;
            const retry = () => {
                try {
                    resolve(this.here(job));
                } catch (e) {
                    reject(e);
                }
            };
            this.jobs.set(id, { resolve, reject, retry });
            // Copied, not transferred: a worker that fails to load leaves
            // the job to be run here.
            this.worker.postMessage({ id, header: job.header, index: job.index, section: job.section });
        });
    }

    here(job) {
        const started = performance.now();
        const latents = decodeGridLatents(job.header, job.index, job.section);
        return { latents, ms: performance.now() - started, where: "page" };
    }
}
