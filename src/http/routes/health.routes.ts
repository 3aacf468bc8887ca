import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod'
import { z } from 'zod'
import type { Metrics } from '../../observability/metrics.ts'

const readinessView = z.object({ ready: z.boolean(), checks: z.record(z.string(), z.boolean()) })

export const healthRoutes: FastifyPluginAsyncZod<{
  metrics: Metrics
  readiness: () => Promise<{ ready: boolean; checks: Record<string, boolean> }>
}> = async (app, { metrics, readiness }) => {
  app.get(
    '/healthz',
    {
      schema: {
        tags: ['health'],
        operationId: 'checkLiveness',
        summary: 'Alive',
        response: { 200: z.object({ status: z.literal('ok') }).describe('The process answers') },
      },
    },
    async () => ({ status: 'ok' as const }),
  )
  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        operationId: 'checkReadiness',
        summary: 'Ready: the store answers and sessions are loaded',
        response: {
          200: readinessView.describe('Ready: every check passed'),
          503: readinessView.describe('Not ready: `checks` says which failed'),
        },
      },
    },
    async (_request, reply) => {
      const result = await readiness()
      return reply.status(result.ready ? 200 : 503).send(result)
    },
  )
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
  })
}
