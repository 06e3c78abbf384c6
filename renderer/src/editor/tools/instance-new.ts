import { paintingTool } from './paint';

/**
 * Each stroke starts a new object (a fresh id) in the active class; the brush then keeps painting
 * that object, so 'new object' then brush corrections feel like one gesture.
 */
export const createNewInstanceTool = () =>
  paintingTool({
    name: 'instance-new',
    title: 'New object',
    shortcut: 'N',
    help: 'Each stroke paints a new object (instance mode). The brush then continues that object.',
    valueForStroke: (ctx) => {
      const id = ctx.model.nextInstanceId();
      ctx.setActiveInstance(id);
      return { cls: Math.max(1, ctx.settings.activeClass), instance: id };
    },
  });
