// PLACEHOLDER until serving lands: the interface the API uses.
import type { TuningService } from '../tuning/service.js';

export class InferenceService {
  constructor(readonly tuning: TuningService) {}
  close(): void {}
}
