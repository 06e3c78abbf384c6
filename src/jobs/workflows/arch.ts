/** The U-Net shape every project model uses (DESIGN.md's reference U-Net: 4 levels, 16 base filters). */
export const ARCH = { depth: 4, baseFilters: 16 };
