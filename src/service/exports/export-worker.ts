// An export worker: a child process (child_process.fork) that writes one export and exits, so that
// converting a large model neither blocks the server's event loop nor stays in its memory.
import { configureThreads } from '../../engine/runtime.js';
import { exportTunedAdapter, UnsupportedExportError, type ExportRequest } from '../../engine/export/export.js';

export type ExportWorkerReply = { type: 'done'; files: string[] } | { type: 'failed'; message: string; unsupported: boolean };

if (!process.send) {
  console.error('attune export worker: run by the server (child_process.fork), not directly');
  process.exit(2);
}

function reply(message: ExportWorkerReply): void {
  process.send!(message, () => process.exit(0));
}

process.once('message', (request: ExportRequest) => {
  configureThreads();
  exportTunedAdapter(request).then(
    (files) => reply({ type: 'done', files }),
    (error: unknown) => {
      if (!(error instanceof UnsupportedExportError)) console.error('attune export worker:', error);
      reply({ type: 'failed', message: error instanceof Error ? error.message : String(error), unsupported: error instanceof UnsupportedExportError });
    },
  );
});
process.once('disconnect', () => process.exit(0)); // the server is gone
