/** One line (or set of markers) of a LinePlot. */
export interface Series {
  name: string;
  color: string;
  points: { x: number; y: number; marker?: boolean; label?: string }[];
  /** Draw only markers (e.g. one value per model). */
  markersOnly?: boolean;
}
